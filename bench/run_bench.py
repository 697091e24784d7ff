"""Run the core benchmark (`run` vs the naive script and both I/O floors) and print a Markdown table.

One invocation measures side by side, each on a fresh copy of the same generated posts: naive.py
on 1,000 posts, `run --no-thumbnails` on 1,000 and 10,000, the sequential and the concurrent
durable-write floors on the same 10,000 (the concurrent one at each --floor-threads; the fastest
is the floor), the no-change re-run, and `run` on 100,000 posts. The simulator runs in its own
process; every measured command is a separate child whose wall time and largest process's peak
RSS are taken. The table is also written to bench/RESULTS.md with the date, machine and command.

    python bench/run_bench.py [--skip-100k] [--floor-threads 4,8,16,32,50] [--latency 0.05] [--keep]
    python bench/run_bench.py --posts-1k 100 --posts-10k 1000 --posts-100k 5000   # a smoke run
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

# Run as `python bench/run_bench.py`: bench/ is sys.path[0] and is not an installed package.
from harness import (
    BENCH,
    BIN,
    KEEP,
    KEY,
    LATENCY,
    Started,
    bench_main,
    full_size,
    machine_facts,
    markdown_table,
    parse_args,
    simulator,
    size_options,
    skip_100k,
    smoke_note,
    verdict,
)
from measured import Measured, measure
from site_check import SiteCheck, check_site, fresh_copy, generate, snapshot

RESULTS = BENCH / "RESULTS.md"
SIZES = {"posts_1k": 1_000, "posts_10k": 10_000, "posts_100k": 100_000}
FLOOR_THREADS = "4,8,16,32,50"


@dataclass
class Row:
    """One line of the results table."""

    label: str
    what: str
    posts: int
    run: Measured
    calls: int | None
    units_per_post: float | None
    note: str = ""

    def in_run(self) -> float:
        """The command's own clock (its JSON `seconds`), or its wall time when it has none."""
        return float(self.run.summary.get("seconds", self.run.wall))


def postrefresh_argv(site: Path, thumbnails: bool) -> list[str]:
    """The `postrefresh run --json` command line, using the venv's console script."""
    script = BIN / "postrefresh"
    exe = str(script) if script.exists() else shutil.which("postrefresh") or "postrefresh"
    flags = ["--json"] if thumbnails else ["--no-thumbnails", "--json"]
    return [exe, "run", "--site", str(site), *flags]


class Bench:
    """The measured commands of one benchmark, sharing the simulator, the env and the logs folder."""

    def __init__(self, url: str, logs: Path) -> None:
        self.url = url
        self.logs = logs
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTREFRESH_", "YOUTUBE_"))}
        self.env |= {"YOUTUBE_API_KEY": KEY, "YOUTUBE_API_URL": url + "/youtube/v3",
                     "YOUTUBE_THUMBNAIL_URL": url}

    def postrefresh(self, label: str, what: str, site: Path, thumbnails: bool = False) -> Row:
        """Measure one `postrefresh run`."""
        run = measure(postrefresh_argv(site, thumbnails), self.env, self.logs, f"row{label}")
        s = run.summary
        note = f"refreshed {s.get('refreshed')}, unchanged {s.get('unchanged')}"
        if thumbnails:
            note += f", thumbnails {s.get('thumbnails_fetched')} (failed {s.get('thumbnail_failures')})"
        if run.processes > 1:
            note += f", {run.processes} processes"
        if run.exit_code:
            note += f", EXIT {run.exit_code}"
        return Row(label, what, int(s.get("seen", 0)), run, s.get("api_calls"), s.get("units_per_post"), note)

    def naive(self, label: str, site: Path) -> Row:
        """Measure bench/naive.py: one videos.list call per post, in turn."""
        argv = [sys.executable, str(BENCH / "naive.py"), "--site", str(site),
                "--api-url", self.url + "/youtube/v3", "--key", KEY]
        run = measure(argv, self.env, self.logs, f"row{label}")
        posts, calls = int(run.summary.get("posts", 0)), int(run.summary.get("calls", 0))
        note = f"EXIT {run.exit_code}" if run.exit_code else "frontmatter.dumps rewrite"
        units = calls / posts if posts else None  # videos.list costs 1 unit per call
        return Row(label, "naive.py (1 call/post)", posts, run, calls, units, note)

    def io_floor(self, label: str, site: Path, mode: str, threads: int = 1) -> Row:
        """Measure bench/io_floor.py: read + durable rewrite of every post, nothing else."""
        argv = [sys.executable, str(BENCH / "io_floor.py"), "--site", str(site), "--mode", mode,
                "--threads", str(threads)]
        run = measure(argv, self.env, self.logs, f"row{label}")
        if mode == "sequential":
            what, note = "io_floor.py --mode sequential", "per post: temp, fsync, rename, folder fsync"
        else:
            what = f"io_floor.py --mode concurrent --threads {threads}"
            note = "per 50: temps, fsyncs at once, renames, each folder fsync"
        note += f", EXIT {run.exit_code}" if run.exit_code else ""
        return Row(label, what, int(run.summary.get("posts", 0)), run, None, None, note)


@dataclass
class Results:
    """Every row measured, the check after the 10k run and the concurrent floor's fastest row."""

    rows: list[Row]
    check: SiteCheck
    floor: Row
    rewritten: int


def bench_1k(bench: Bench, work: Path, posts: int) -> list[Row]:
    """naive.py and `run` on the same posts (fresh copies)."""
    pristine = generate(work / "p1k", posts)
    naive = bench.naive("1", fresh_copy(pristine, work / "r1"))
    run = bench.postrefresh("2", "postrefresh run --no-thumbnails", fresh_copy(pristine, work / "r2"))
    return [naive, run]


def bench_10k(bench: Bench, work: Path, posts: int, threads: list[int]) -> Results:
    """`run`, its check and no-change re-run, and both floors on fresh copies of the same posts."""
    pristine = generate(work / "p10k", posts)
    site = fresh_copy(pristine, work / "r3")
    run = bench.postrefresh("3", "postrefresh run --no-thumbnails", site)
    check = check_site(site, pristine)
    run.note += f"; {check.right:,}/{check.checked:,} posts right"
    before = snapshot(site)
    again = bench.postrefresh("6", "postrefresh run --no-thumbnails, again (no change)", site)
    rewritten = sum(1 for name, mark in snapshot(site).items() if before.get(name) != mark)
    again.note += f", post files rewritten {rewritten}"
    sequential = bench.io_floor("4", fresh_copy(pristine, work / "r4"), "sequential")
    concurrent = [bench.io_floor(f"5{chr(ord('a') + i)}", fresh_copy(pristine, work / f"r5-{n}"),
                                 "concurrent", n) for i, n in enumerate(threads)]
    floor = min(concurrent, key=lambda row: row.run.wall)
    floor.note += "; **fastest: the floor**"
    return Results([run, sequential, *concurrent, again], check, floor, rewritten)


def fmt(value: float | int | None, digits: int = 2) -> str:
    """A table cell: '-' for nothing, fixed decimals for floats."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def rows_table(rows: list[Row]) -> list[str]:
    """The results as a Markdown table, in the order measured."""
    head = ["#", "run", "posts", "wall s", "in-run s", "API calls", "units/post", "peak RSS MB", "notes"]
    return markdown_table(head, "llrrrrrrl", [
        [r.label, r.what, f"{r.posts:,}", f"{r.run.wall:.2f}", fmt(r.run.summary.get("seconds")),
         fmt(r.calls), fmt(r.units_per_post, 4), f"{r.run.rss_mb:.1f}", r.note] for r in rows])


def ratio(slow: Row, fast: Row) -> str:
    """`wall/wall = Nx (in-run/in-run = Mx)`."""
    return (f"{slow.run.wall:.2f} s / {fast.run.wall:.2f} s = {slow.run.wall / fast.run.wall:.2f}x wall "
            f"(in-run {slow.in_run():.2f} s / {fast.in_run():.2f} s = {slow.in_run() / fast.in_run():.2f}x)")


def quota_ok(row: Row) -> bool:
    """At most one videos.list call (1 unit) per 50 posts: 0.020 units/post."""
    return row.calls is not None and row.run.exit_code == 0 and row.calls <= math.ceil(row.posts / 50)


def verdicts(rows: list[Row], results: Results) -> list[str]:
    """Each target of issue 11 with its figure (wall clock, as the issue) and whether it was met."""
    by = {r.label: r for r in rows}
    naive, run_1k, run_10k, sequential = by["1"], by["2"], by["3"], by["4"]
    floor, check = results.floor, results.check
    speedup = naive.run.wall / run_1k.run.wall
    to_floor = run_10k.run.wall / floor.run.wall
    out = [verdict(f"`run` vs naive.py, {run_1k.posts:,} posts (target ≥ 100x, wall)",
                   ratio(naive, run_1k), speedup >= 100),
           verdict(f"`run` vs the concurrent floor, {run_10k.posts:,} posts (target ≤ 2x, wall)",
                   ratio(run_10k, floor), to_floor <= 2),
           f"- for reference, `run` vs the sequential floor: {ratio(run_10k, sequential)}; "
           f"the concurrent floor's fastest pool: {floor.run.summary.get('threads')} threads"]
    if "7" in by:
        rss = by["7"].run.rss_mb
        out.append(verdict(f"peak RSS of the largest process, {by['7'].posts:,} posts (target < 100 MB)",
                           f"{rss:.1f} MB ({by['7'].run.processes} process(es))", rss < 100))
    runs = [r for r in rows if r.calls is not None and r.label != "1"]
    out += [verdict("quota (target 0.020 units/post: one call per 50 ids), every `run` row",
                    ", ".join(f"#{r.label} {fmt(r.units_per_post, 4)}" for r in runs),
                    all(map(quota_ok, runs))),
            verdict("correctness after #3 (stats = simulator, every other byte kept, refreshed_at)",
                    check.summary(), check.wrong == 0 and check.checked > 0),
            verdict("no change → no write (#6 on #3's site)", f"{results.rewritten} post files rewritten",
                    results.rewritten == 0)]
    return out + [f"  - {example}" for example in check.examples]


def render(rows: list[Row], results: Results, args: argparse.Namespace, started: Started,
           facts: list[str]) -> str:
    """The whole RESULTS.md text."""
    return "\n".join([
        "# Benchmark: the core", "",
        f"Run {started.at:%Y-%m-%d %H:%M} UTC with `{started.command}` from the repo root; simulator in "
        f"its own process, API latency {args.latency:g} s, posts from bench/gen_posts.py (seed 0).", "",
        *smoke_note(args, SIZES), *facts, "",
        *rows_table(rows), "",
        "wall s: the measured process from spawn to exit (start-up and imports included); in-run s: "
        "the command's own clock. Targets compare wall s (in-run shown beside). Peak RSS: the largest "
        "process of the command's tree (wait4's ru_maxrss, the maximum over the process and every child "
        "it reaped, and each descendant's VmHWM sampled every 0.2 s), in MiB. Each row runs on a fresh "
        "copy of the same generated posts, except #6, which re-runs on #3's site right after it.", "",
        "## Targets", "", *verdicts(rows, results),
    ])


def main(argv: list[str] | None = None) -> int:
    """Run every row, print the table and write bench/RESULTS.md."""
    threads = ("--floor-threads", {"default": FLOOR_THREADS, "help": "fsync pool sizes to try"})
    args = parse_args(__doc__, argv, skip_100k("row 7"), *size_options(SIZES), threads, LATENCY, KEEP)

    def run(started: Started) -> str:
        work, logs = started.work, started.work / "logs"
        with simulator(args.latency, logs) as url:
            bench = Bench(url, logs)
            rows = bench_1k(bench, work, args.posts_1k)
            results = bench_10k(bench, work, args.posts_10k, [int(n) for n in args.floor_threads.split(",")])
            rows += results.rows
            if not args.skip_100k:
                site = generate(work / "r7", args.posts_100k)
                rows.append(bench.postrefresh("7", "postrefresh run --no-thumbnails", site))
        return render(rows, results, args, started, machine_facts(started))

    written_to = RESULTS if full_size(args, SIZES) else None
    return bench_main("run_bench.py", "postrefresh-bench-", written_to, args.keep, argv, run)


if __name__ == "__main__":
    sys.exit(main())
