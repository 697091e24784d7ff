"""Load and soak benchmark: 100,000 posts through `run`, 20,000 through Celery, then a beat-driven soak.

Every row runs against the simulator in its own process with 5 % faults (500/503/429/drop)
and is followed by a full check of every post (`check_site`): values equal the simulator's
truth, body bytes unchanged, every original front-matter line kept byte-identical and in
order, and nothing added but the stat lines, `refreshed_at` and the `history:` block. The
soak samples Redis and every worker's memory every 30 s while beat drives the refreshes and
the simulator's epoch moves every 2 minutes. Results go to bench/LOAD_RESULTS.md.

    python bench/load_bench.py [--skip-run] [--skip-celery] [--soak-minutes 30] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Run as `python bench/load_bench.py`: bench/ is sys.path[0] and is not an installed package.
from celery_procs import CeleryBench, Worker, redis_server, scan_logs, versions
from harness import (
    BENCH,
    KEEP,
    LATENCY,
    Simulator,
    Started,
    bench_main,
    epoch_simulator,
    machine_facts,
    markdown_table,
    parse_args,
)
from run_bench import Bench
from site_check import SiteCheck, check_site, fresh_copy, generate
from soak import Soak, load, soak, soak_lines

RESULTS = BENCH / "LOAD_RESULTS.md"


@dataclass
class Row:
    """One line of the load table."""

    what: str
    posts: int
    wall: float
    calls: str
    units: str
    rss: str
    check: SiteCheck
    load: str
    note: str = ""


def run_row(sim: Simulator, work: Path, posts: int) -> Row:
    """`postrefresh run --no-thumbnails --json` on `posts` fresh posts, then the checker over all."""
    pristine = generate(work / "p-run", posts)
    site = fresh_copy(pristine, work / "run")
    before = load()
    row = Bench(sim.url, work / "logs").postrefresh("1", "run", site)
    after = load()
    s = row.run.summary
    checking = time.monotonic()
    check = check_site(site, pristine)
    note = (f"checker {time.monotonic() - checking:.0f} s; {row.note}; api_retries {s.get('api_retries')}, "
            f"not_reached {s.get('not_reached')}, "
            f"bad {len(s.get('bad') or [])}, in-run {s.get('seconds')} s, exit {row.run.exit_code}")
    shutil.rmtree(pristine, ignore_errors=True)
    return Row("`postrefresh run --no-thumbnails --json`", row.posts, row.run.wall, f"{row.calls:,}",
               f"{row.units_per_post or 0:.4f}", f"{row.run.rss_mb:.1f}", check, f"{before} → {after}", note)


def celery_row(sim: Simulator, redis_url: str, work: Path, posts: int) -> tuple[Row, list[str]]:
    """Enqueue + 2 fetch workers (-c 8) + 1 write worker (-c 1) over `posts` posts, then the checker."""
    pristine = generate(work / "p-celery", posts)
    bench = CeleryBench(sim.url, redis_url, work)
    site = fresh_copy(pristine, work / "celery")
    bench.client.flushall()
    env = bench.env | {"POSTREFRESH_SITE": str(site)}
    workers = [Worker(n, "fetch", 8, env, bench.logs) for n in ("fetch1", "fetch2")]
    workers.append(Worker("write", "write", 1, env, bench.logs))
    before = load()
    try:
        for worker in workers:
            worker.wait_ready()
        drain = bench.run_to_drain(site)
        wall, enqueue = drain.wall, drain.enqueue
        after = load()
        memory = [worker.memory() for worker in workers]
        for worker in workers:
            worker.stop()
    finally:
        for worker in workers:
            worker.kill()
    units, logs = bench.total("postrefresh:quota:*"), scan_logs([w.log for w in workers[:2]])
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(bench.outcomes().items()))
    bench.client.close()
    check = check_site(site, pristine)
    note = (f"enqueue {enqueue.wall:.1f} s (exit {enqueue.exit_code}); write outcomes: {outcomes}; "
            f"{logs['celery_retries']} Celery retries, {logs['attempt_failures']} failed attempts "
            "in the fetch logs")
    rss = f"enqueue {enqueue.rss_mb:.1f}; " + "; ".join(
        f"{m.name} {m.main_hwm:.0f} + pool max {max(m.children_hwm, default=0):.0f}" for m in memory)
    shutil.rmtree(pristine, ignore_errors=True)
    row = Row(f"Celery: enqueue + 2 fetch (-c 8) + 1 write (-c 1); `--celery-posts {posts}`", posts, wall,
              f"{units:,}", f"{units / posts:.4f}", rss, check, f"{before} → {after}", note)
    return row, [f"`{' '.join(w.argv)}`" for w in workers]


def row_lines(rows: list[Row]) -> list[str]:
    """The load table."""
    head = ["run", "posts", "wall s", "API calls (units)", "units/post", "peak RSS MB", "checker",
            "load 1-min start → end", "notes"]
    lines = markdown_table(head, "lrrrrllll", [[r.what, f"{r.posts:,}", f"{r.wall:.1f}", r.calls, r.units,
                                                r.rss, r.check.summary(), r.load, r.note] for r in rows])
    for r in rows:
        lines += [f"- {r.what}: first problems: " + ("none" if not r.check.examples else "")]
        lines += [f"  - {e}" for e in r.check.examples]
    return lines


def render(rows: list[Row], celery_commands: list[str], s: Soak, args: argparse.Namespace,
           started: Started, facts: list[str]) -> str:
    """The whole LOAD_RESULTS.md text."""
    return "\n".join([
        "# Benchmark: load and soak", "",
        f"Run {started.at:%Y-%m-%d %H:%M} UTC with `{started.command}` from the repo root. Simulator in its "
        f"own process, API latency {args.latency:g} s, fault rate {args.fault_rate:g} (500/503/429/drop, "
        "seeded); a private redis-server; posts from bench/gen_posts.py (seed 0); thumbnails off. Other "
        "engineers were running tests on this machine at the same time: see the load averages.", "",
        *facts, "", "## Load", "", *row_lines(rows), "",
        *([f"Celery processes: {', '.join(celery_commands)}.", ""] if celery_commands else []),
        "Checker (`check_site`, every post): viewcount / likeCount / commentCount equal the simulator's "
        "`expected_fields` (a hidden count: `""`); body bytes identical; every original "
        "front-matter line other than a stat line present byte-identical and in order; nothing else added "
        "but the stat lines, one `refreshed_at` and the `history:` block. A never-refreshed post is wrong. "
        "Celery wall s: from the enqueue's start until both queues are empty and no post is still queued. "
        "Peak RSS: wait4 ru_maxrss (run, enqueue) or VmHWM (workers, main + the largest pool child).", "",
        *soak_lines(s, args.soak_posts)])


def main(argv: list[str] | None = None) -> int:
    """Run the rows and the soak, print the results and write bench/LOAD_RESULTS.md."""
    args = parse_args(
        __doc__, argv,
        ("--skip-run", {"action": "store_true", "help": "leave out the `postrefresh run` row"}),
        ("--skip-celery", {"action": "store_true", "help": "leave out the Celery row"}),
        ("--soak-minutes", {"type": float, "default": 30.0, "help": "0 leaves the soak out"}),
        ("--run-posts", {"type": int, "default": 100_000}),
        ("--celery-posts", {"type": int, "default": 20_000}),
        ("--soak-posts", {"type": int, "default": 5_000}), LATENCY,
        ("--fault-rate", {"type": float, "default": 0.05}), KEEP)
    return bench_main("load_bench.py", "postrefresh-load-bench-", RESULTS, args.keep, argv,
                      lambda started: run_all(args, started))


def run_all(args: argparse.Namespace, started: Started) -> str:
    """The rows, then the soak; the results file is rewritten after each phase."""
    work = started.work
    rows: list[Row] = []
    celery_commands: list[str] = []
    result = Soak()

    def report() -> str:
        # Written after every phase, so a failure late in the soak still leaves the rows before it.
        text = render(rows, celery_commands, result, args, started, [*machine_facts(started), versions()])
        RESULTS.write_text(text + "\n", encoding="utf-8")
        return text

    with epoch_simulator(args.latency, args.fault_rate, work / "logs") as sim, \
            redis_server(work / "logs") as redis_url:
        if not args.skip_run:
            rows.append(run_row(sim, work, args.run_posts))
            report()
        if not args.skip_celery:
            row, celery_commands = celery_row(sim, redis_url, work, args.celery_posts)
            rows.append(row)
            report()
        if args.soak_minutes > 0:
            result.minutes = args.soak_minutes
            try:
                soak(sim, redis_url, work, args.soak_posts, result)
            except Exception as exc:  # keep the rows and the samples so far; say what broke
                result.error = f"{type(exc).__name__}: {exc}"
                print(f"soak failed: {result.error}", file=sys.stderr)
    return render(rows, celery_commands, result, args, started, [*machine_facts(started), versions()])


if __name__ == "__main__":
    sys.exit(main())
