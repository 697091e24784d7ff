"""Time reading and editing posts per post: the YAML path forced versus the line scanner.

Generates posts with gen_posts (corpus format) into a temporary folder, reads them into memory,
then times, best of --repeat rounds: `parse` of each post, and `apply_edit` of a typical refresh
(viewcount, likeCount, commentCount, refreshed_at and a history entry) on the fresh post and
again on its result (a post that already has a history block). Prints a table in µs per post.

    python bench/parse_bench.py [--count 5000] [--repeat 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from bench.gen_posts import generate_site
from worker.frontmatter import document
from worker.frontmatter.document import Parsed, parse
from worker.frontmatter.editor import Edit, apply_edit

STAMP = "2026-12-02T01:00:00Z"


def refresh_edit(parsed: Parsed, round_no: int) -> Edit:
    """The edit a refresh makes: new counts, the stamp, and the replaced values as history."""
    old = parsed.front.mapping
    values = {
        "viewcount": str(int(old.get("viewcount") or 0) + 1000 + round_no),
        "likeCount": str(int(old.get("likeCount") or 0) + 10 + round_no),
        "commentCount": str(7 + round_no),
        "refreshed_at": STAMP,
    }
    entry = {"at": old.get("refreshed_at") or old["date"], "viewcount": old.get("viewcount"),
             "likeCount": old.get("likeCount")}
    if "commentCount" in old:
        entry["commentCount"] = old["commentCount"]
    return Edit(values=values, history_entry=entry)


def best_per_post(work: Callable[[], int], repeat: int) -> float:
    """The best of `repeat` runs of `work` (which returns how many posts it did), in µs/post."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        count = work()
        best = min(best, (time.perf_counter() - started) / count * 1e6)
    return best


@contextmanager
def yaml_path_forced() -> Iterator[None]:
    """Make the scanner decline everything, so every read composes the YAML as before."""
    with mock.patch.object(document, "scan", lambda text, max_nodes: None):
        yield


def measure(posts: list[bytes], repeat: int) -> dict[str, float]:
    """µs/post for parse, first refresh and second refresh, with whatever path is in force."""
    parsed = [parse(data) for data in posts]
    edits = [refresh_edit(p, 1) for p in parsed]
    once = [apply_edit(d, e, p).data for d, e, p in zip(posts, edits, parsed, strict=True)]
    parsed_once = [parse(data) for data in once]
    edits_again = [refresh_edit(p, 2) for p in parsed_once]

    def parse_all() -> int:
        for data in posts:
            parse(data)
        return len(posts)

    def edit_all(datas: list[bytes], edits: list[Edit], parsed: list[Parsed]) -> Callable[[], int]:
        def run() -> int:
            for data, edit, p in zip(datas, edits, parsed, strict=True):
                apply_edit(data, edit, p)
            return len(datas)
        return run

    return {
        "parse": best_per_post(parse_all, repeat),
        "apply_edit (1st refresh)": best_per_post(edit_all(posts, edits, parsed), repeat),
        "apply_edit (2nd refresh)": best_per_post(edit_all(once, edits_again, parsed_once), repeat),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI: generate, measure both paths, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        generate_site(Path(tmp), args.count, args.seed)
        posts = [path.read_bytes() for path in sorted((Path(tmp) / "_posts").iterdir())]
    with yaml_path_forced():
        before = measure(posts, args.repeat)
    after = measure(posts, args.repeat)
    print(f"{len(posts)} posts (gen_posts seed {args.seed}), best of {args.repeat}, µs/post")
    print(f"{'step':<26}{'YAML path':>12}{'scanner':>12}{'speed-up':>10}")
    for step, old in before.items():
        print(f"{step:<26}{old:>12.1f}{after[step]:>12.1f}{old / after[step]:>9.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
