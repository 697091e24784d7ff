"""Time reading and editing posts per post: the YAML path forced versus the line scanner.

Generates posts with gen_posts (corpus format) into a temporary folder, reads them into memory,
then times, best of --repeat interleaved rounds, in CPU µs per post: `parse` of each post and
`apply_edit` of a typical refresh (viewcount, likeCount, commentCount, refreshed_at and a history
entry), on the posts as generated, after one refresh, and (some of them) after 30 refreshes.

    python -m bench.parse_bench [--count 5000] [--history-count 500] [--repeat 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
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
        "refreshed_at": f"2026-12-02T01:{round_no % 60:02d}:00Z",
    }
    entry = {"at": old.get("refreshed_at") or old["date"], "viewcount": old.get("viewcount"),
             "likeCount": old.get("likeCount")}
    if "commentCount" in old:
        entry["commentCount"] = old["commentCount"]
    return Edit(values=values, history_entry=entry)


def refreshed(data: bytes, rounds: int) -> bytes:
    """`data` after `rounds` refreshes (its history holds min(rounds, 30) entries)."""
    for round_no in range(1, rounds + 1):
        data = apply_edit(data, refresh_edit(parse(data), round_no)).data
    return data


def cpu_per_post(work: Callable[[], int]) -> float:
    """The CPU time of one run of `work` (which returns how many posts it did), in µs/post.

    CPU time, not wall time: on a shared machine a process waiting for a core is not slower.
    """
    started = time.process_time()
    count = work()
    return (time.process_time() - started) / count * 1e6


@contextmanager
def yaml_path_forced() -> Iterator[None]:
    """Make the scanner decline everything, so every read composes the YAML as before."""
    with mock.patch.object(document, "scan", lambda text, max_nodes: None):
        yield


def steps(posts: list[bytes], rounds: int) -> dict[str, Callable[[], int]]:
    """The parse and the next refresh's apply_edit of every post, each as one timed run."""
    parsed = [parse(data) for data in posts]
    edits = [refresh_edit(p, rounds + 1) for p in parsed]

    def parse_all() -> int:
        for data in posts:
            parse(data)
        return len(posts)

    def edit_all() -> int:
        for data, edit, p in zip(posts, edits, parsed, strict=True):
            apply_edit(data, edit, p)
        return len(posts)

    return {"parse": parse_all, "apply_edit": edit_all}


def measure(sets: dict[str, list[bytes]], repeat: int) -> dict[tuple[str, str], list[float]]:
    """Best µs/post of each step on each set, [YAML path, scanner], the two runs interleaved."""
    best: dict[tuple[str, str], list[float]] = {}
    for name, posts in sets.items():
        rounds = int(name.split()[0])
        for step in ("parse", "apply_edit"):
            best[(name, step)] = [float("inf"), float("inf")]
        for _ in range(repeat):
            for path in (0, 1):
                with yaml_path_forced() if path == 0 else contextlib.nullcontext():
                    for step, work in steps(posts, rounds).items():
                        cell = best[(name, step)]
                        cell[path] = min(cell[path], cpu_per_post(work))
    return best


def main(argv: list[str] | None = None) -> int:
    """CLI: generate, measure both paths, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--history-count", type=int, default=500,
                        help="how many of the posts are also timed with a full history (30 entries)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        generate_site(Path(tmp), args.count, args.seed)
        posts = [path.read_bytes() for path in sorted((Path(tmp) / "_posts").iterdir())]
    sets = {"0 refreshes": posts, "1 refresh": [refreshed(d, 1) for d in posts],
            "30 refreshes": [refreshed(d, 30) for d in posts[:args.history_count]]}
    best = measure(sets, args.repeat)
    print(f"gen_posts seed {args.seed}; CPU µs/post, best of {args.repeat}")
    print(f"{'posts':<26}{'step':<12}{'YAML path':>11}{'scanner':>10}{'speed-up':>10}")
    for (name, step), (old, new) in best.items():
        label = f"{len(sets[name])} after {name}"
        print(f"{label:<26}{step:<12}{old:>11.1f}{new:>10.1f}{old / new:>9.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
