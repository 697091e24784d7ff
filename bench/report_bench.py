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
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gen_posts import file_name, render_post, video_id
from bench.harness import markdown_table
from worker.site.state import SiteState

CLOSING = b"\r\n---\r\n"


def stamp(moment: datetime) -> str:
    """The `refreshed_at` form postrefresh writes."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def with_history(data: bytes, rng: random.Random, now: datetime, entries: int, gone: bool) -> bytes:
    """The post with `refreshed_at`, maybe a status, and `entries` history lines (oldest first)."""
    head, _, body = data.partition(CLOSING)
    views = int(head.split(b'viewcount: "', 1)[1].split(b'"', 1)[0] or b"0")
    times = sorted(now - timedelta(days=rng.uniform(0, 90)) for _ in range(entries))
    lines, value = [], views
    for moment in times:
        lines.append(f'  - {{at: "{stamp(moment)}", viewcount: "{value}", likeCount: "{value // 50}"}}')
        value += int(rng.expovariate(1 / max(50, views // 40)))
    old_views = f'viewcount: "{views}"'.encode()
    head = head.replace(old_views, f'viewcount: "{value}"'.encode(), 1)
    extra = [f'refreshed_at: "{stamp(now)}"'] + (['status: "unavailable"'] if gone else [])
    block = "\r\n".join([*extra, "history:", *lines]).encode()
    return head + b"\r\n" + block + CLOSING + body


def write_csv(site: Path, vid: str, rng: random.Random, now: datetime) -> None:
    """An overflow CSV of 20 older points (one row per field)."""
    rows = ["at,field,value"]
    value = rng.randint(10, 1000)
    for day in range(200, 100, -5):
        rows.append(f"{stamp(now - timedelta(days=day))},viewcount,{value}")
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


def tree_rss_mib(root: int) -> float:
    """The resident memory of `root` and its children (the report's worker processes), in MiB."""
    pids = [root]
    try:
        children = Path(f"/proc/{root}/task/{root}/children").read_text().split()
    except OSError:
        return 0.0
    pids += [int(pid) for pid in children]
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total / 1024


def measure(site: Path, out: Path) -> tuple[float, float, float, int]:
    """Run the report; (wall s, largest process peak MiB, peak sampled tree MiB, exit code)."""
    argv = [sys.executable, "-m", "worker", "report", "--site", str(site), "--out", str(out)]
    started = time.perf_counter()
    proc = subprocess.Popen(argv)
    peak_tree = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not done.wait(0.2):
            peak_tree = max(peak_tree, tree_rss_mib(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)  # ru_maxrss: the largest of it and its reaped children
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    return wall, usage.ru_maxrss / 1024, peak_tree, os.waitstatus_to_exitcode(status)


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
    wall, peak, tree, code = measure(site, out)
    size = out.stat().st_size / 2**20 if out.exists() else 0.0
    print(f"nproc {os.cpu_count()}; Python {sys.version.split()[0]}; exit {code}\n")
    head = ["posts", "history lines/post", "wall s", "peak RSS MiB (largest process)",
            "peak RSS MiB (all processes)", "HTML MiB"]
    cells = [f"{args.count:,}", str(args.entries), f"{wall:.1f}", f"{peak:.0f}", f"{tree:.0f}", f"{size:.1f}"]
    print("\n".join(markdown_table(head, "rrrrrr", [cells])))
    return code


if __name__ == "__main__":
    sys.exit(main())
