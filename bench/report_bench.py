"""Time `postrefresh report` on a generated site whose posts carry a history.

Posts come from bench/gen_posts.py (the corpus format); each gets `refreshed_at` and a
`history:` block of flow lines (as postrefresh writes them) spread over the last 90 days,
every 20th an older overflow CSV in `_data/postrefresh/`, every 200th `status: "unavailable"`;
the state database gets 60 days of quota and 50 failed posts. Prints one markdown table.

    python bench/report_bench.py [--count 100000] [--entries 12] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gen_posts import file_name, render_post, video_id
from bench.harness import markdown_table, spawn_children_with_fork
from bench.measured import measure
from worker.site.state import SiteState
from worker.times import utc_stamp

CLOSING = b"\r\n---\r\n"


def with_history(data: bytes, rng: random.Random, now: datetime, entries: int, gone: bool) -> bytes:
    """The post with `refreshed_at`, maybe a status, and `entries` history lines (oldest first)."""
    head, _, body = data.partition(CLOSING)
    views = int(head.split(b'viewcount: "', 1)[1].split(b'"', 1)[0] or b"0")
    times = sorted(now - timedelta(days=rng.uniform(0, 90)) for _ in range(entries))
    lines, value = [], views
    for moment in times:
        lines.append(f'  - {{at: "{utc_stamp(moment)}", viewcount: "{value}", likeCount: "{value // 50}"}}')
        value += int(rng.expovariate(1 / max(50, views // 40)))
    old_views = f'viewcount: "{views}"'.encode()
    head = head.replace(old_views, f'viewcount: "{value}"'.encode(), 1)
    extra = [f'refreshed_at: "{utc_stamp(now)}"'] + (['status: "unavailable"'] if gone else [])
    block = "\r\n".join([*extra, "history:", *lines]).encode()
    return head + b"\r\n" + block + CLOSING + body


def write_csv(site: Path, vid: str, rng: random.Random, now: datetime) -> None:
    """An overflow CSV of 20 older points (one row per field)."""
    rows = ["at,field,value"]
    value = rng.randint(10, 1000)
    for day in range(200, 100, -5):
        rows.append(f"{utc_stamp(now - timedelta(days=day))},viewcount,{value}")
        value += rng.randint(0, 50)
    folder = site / "_data/postrefresh"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{vid}.csv").write_text("\n".join(rows) + "\n")


def generate(site: Path, count: int, entries: int) -> None:
    """Write the site: posts with history, some CSVs, and the state database."""
    posts = site / "_posts"
    posts.mkdir(parents=True, exist_ok=True)
    rng, now = random.Random(0), datetime.now(UTC)
    for index in range(count):
        vid = video_id(index)
        title, data = render_post(rng, vid)
        data = with_history(data, rng, now, entries, gone=index % 200 == 0)
        (posts / file_name(title, vid, index)).write_bytes(data)
        if index % 20 == 0:
            write_csv(site, vid, rng, now)
    with SiteState(site) as state:
        for day in range(60):
            state.add_units((now - timedelta(days=day)).date().isoformat(), rng.randint(100, 2100))
        state.replace_problems([(f"_posts/broken-{i}.md", "invalid YAML at line 3") for i in range(50)])


def main(argv: list[str] | None = None) -> int:
    """Generate the site (unless it exists), time the report once, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=12, help="history lines per post")
    parser.add_argument("--work", type=Path, help="keep the site here (reused if present)")
    parser.add_argument("--generate-only", action="store_true", help="write the site, time nothing")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="report-bench-"))
    site = work / "site"
    if not (site / "_posts").exists():
        started = time.perf_counter()
        generate(site, args.count, args.entries)
        print(f"generated {args.count:,} posts in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    if args.generate_only:
        return 0
    out = work / "report.html"
    spawn_children_with_fork()
    argv = [sys.executable, "-m", "worker", "report", "--site", str(site), "--out", str(out)]
    run = measure(argv, dict(os.environ), work, "report")
    if run.exit_code:
        print(f"the report's output: {work}/report.out and report.err", file=sys.stderr)
    size = out.stat().st_size / 2**20 if out.exists() else 0.0
    print(f"nproc {os.cpu_count()}; Python {sys.version.split()[0]}; exit {run.exit_code}\n")
    head = ["posts", "history lines/post", "wall s", "peak RSS MiB (largest process)",
            "peak RSS MiB (all processes)", "HTML MiB"]
    cells = [f"{args.count:,}", str(args.entries), f"{run.wall:.1f}", f"{run.rss_mb:.0f}",
             f"{run.tree_rss_mb:.0f}", f"{size:.1f}"]
    print("\n".join(markdown_table(head, "rrrrrr", [cells])))
    return run.exit_code


if __name__ == "__main__":
    sys.exit(main())
