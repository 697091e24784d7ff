"""Benchmark the Celery path (enqueue, 2 fetch workers, 1 write worker) against `postrefresh run`.

A private redis-server (never 6379) and the simulator run in their own processes; the workers
are real `celery -A tasks worker` processes. The table is also written to
bench/CELERY_RESULTS.md with the date, the machine and the exact command.

    python bench/celery_bench.py [--skip-100k] [--latency 0.05] [--keep]
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import yaml

# Run as `python bench/celery_bench.py`: bench/ is sys.path[0] and is not an installed package.
from celery_procs import CeleryBench, ProcMemory, Worker, redis_server, scan_logs, versions
from harness import (
    BENCH,
    KEEP,
    LATENCY,
    Measured,
    Started,
    bench_main,
    kib_field,
    machine_facts,
    markdown_table,
    measure,
    parse_args,
    simulator,
    skip_100k,
    verdict,
)
from run_bench import YAML_LOADER, Bench, Check, fresh_copy, generate, split_post, verify_site

RESULTS = BENCH / "CELERY_RESULTS.md"
FETCH_WORKERS, FETCH_CONCURRENCY = ("fetch1", "fetch2"), 8
POSTS = 10_000


@dataclass
class Line:
    """One line of the results table (cells already chosen by the row)."""

    label: str
    what: str
    posts: str
    wall: str
    calls: str
    units: str
    rss: str
    correct: str
    note: str = ""


@dataclass
class Report:
    """Everything the Markdown file shows."""

    lines: list[Line] = field(default_factory=list)
    workers: list[ProcMemory] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)
    observations: list[str] = field(default_factory=list)
    enqueue_rss_10k: float = 0.0
    bench_hwm: float = 0.0  # this script's own peak RSS: no child reading can be below its mark at fork


def row_a(celery: CeleryBench, pristine: Path, report: Report) -> None:
    """10,000 posts: enqueue, 2 fetch workers (-c 8), 1 write worker (-c 1), thumbnails off."""
    site = fresh_copy(pristine, celery.work / "rA")
    celery.client.flushall()
    env = celery.env | {"POSTREFRESH_SITE": str(site)}
    workers = [Worker(n, "fetch", FETCH_CONCURRENCY, env, celery.logs) for n in FETCH_WORKERS]
    workers.append(Worker("write", "write", 1, env, celery.logs))
    try:
        for worker in workers:
            worker.wait_ready()
        wall, enqueue = celery.run_to_drain(site)
        memories = [w.memory() for w in workers]
        report.workers = [replace(m, wait4_maxrss=w.stop())
                          for m, w in zip(memories, workers, strict=True)]
    finally:
        for worker in workers:
            worker.kill()
    report.enqueue_rss_10k = enqueue.rss_mb
    units, outcomes = celery.total("postrefresh:quota:*"), celery.outcomes()
    check, missing = verify_site(site, pristine), without_refreshed_at(site)
    logs = scan_logs([w.log for w in workers[:2]])
    report.lines.append(row_a_line(wall, enqueue, units, outcomes, check, missing, logs))
    report.observations += row_a_observations(wall, enqueue, units, logs, check)
    report.verdicts += [
        verdict("A API calls (target ≤ 0.025/post + retries, ≤ ~250 + retries)",
                f"{units} units = {units / check.checked:.4f}/post; {logs['celery_retries']} Celery "
                f"retries, {logs['attempt_failures']} failed attempts",
                units <= check.checked * 0.025 + logs["celery_retries"]),
        verdict("A correctness (viewcount = simulator, body bytes unchanged, refreshed_at set)",
                f"{check.checked - check.wrong:,}/{check.checked:,} correct, {missing} without "
                "refreshed_at", check.wrong == 0 and missing == 0)]


def row_d(celery: CeleryBench, report: Report) -> None:
    """100,000 posts enqueued into Redis with no worker running."""
    site = generate(celery.work / "rD", 100_000)
    celery.client.flushall()
    argv, env = celery.enqueue_argv(site)
    run = measure(argv, env, celery.logs, "rowD-enqueue")
    memory = celery.client.info("memory")["used_memory_human"]
    queued = celery.client.llen("fetch")
    pending = celery.client.zcard("postrefresh:pending")
    celery.client.flushall()
    note = (f"{enqueue_line(celery.logs / 'rowD-enqueue.out')}; fetch queue {queued:,}, pending set "
            f"{pending:,}; Redis used_memory after: {memory}; exit {run.exit_code}")
    report.lines.append(Line("D", "`postrefresh enqueue --all`, no workers", "100,000", f"{run.wall:.2f}",
                             "0", "-", f"{run.rss_mb:.1f}", "-", note))
    ratio = run.rss_mb / report.enqueue_rss_10k if report.enqueue_rss_10k else 0.0
    report.verdicts += [
        verdict("D enqueue 100k wall (target < 60 s)", f"{run.wall:.1f} s", run.wall < 60),
        verdict("D enqueue memory flat (peak RSS 100k vs 10k, target < 1.5x)",
                f"{run.rss_mb:.1f} MB vs {report.enqueue_rss_10k:.1f} MB ({ratio:.2f}x)", ratio < 1.5),
        f"- D Redis memory after queueing 100,000 tasks: {memory}"]


def without_refreshed_at(site: Path) -> int:
    """How many posts lack a `refreshed_at` key in their front matter."""
    missing = 0
    for path in (site / "_posts").iterdir():
        fields = yaml.load(split_post(path.read_bytes())[0], Loader=YAML_LOADER)
        missing += not fields.get("refreshed_at")
    return missing


def enqueue_line(out: Path) -> str:
    """The enqueue's own one-line summary."""
    lines = out.read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else "no output"


def row_a_line(wall: float, enqueue: Measured, units: int, outcomes: dict[str, int], check: Check,
               missing: int, logs: dict[str, int]) -> Line:
    """Row A's cells."""
    written = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
    note = (f"enqueue {enqueue.wall:.2f} s, exit {enqueue.exit_code}; write outcomes: {written}; "
            f"{logs['calls']} videos.list in worker logs ({logs['full']} of 50 ids, smallest "
            f"{logs['smallest']}); {missing} without refreshed_at")
    return Line("A", "Celery: enqueue + 2 fetch workers (-c 8) + 1 write worker (-c 1)", f"{check.checked:,}",
                f"{wall:.2f}", f"{units:,}", f"{units / check.checked:.4f}",
                f"enqueue {enqueue.rss_mb:.1f}; workers below",
                f"{check.checked - check.wrong:,}/{check.checked:,}", note)


def row_a_observations(wall: float, enqueue: Measured, units: int, logs: dict[str, int],
                       check: Check) -> list[str]:
    """What row A's figures say beyond the table."""
    out = [f"- A: {check.checked / wall:.0f} posts/s end to end; the enqueue alone took "
           f"{enqueue.wall:.2f} s.",
           f"- A: quota units {units} vs videos.list lines in the fetch logs {logs['calls']} "
           f"(ids covered {logs['ids']:,}; {logs['full']} full batches of 50, smallest {logs['smallest']})."]
    out += [f"  - {problem}" for problem in check.problems]
    return out


def row_b(bench: Bench, pristine: Path, work: Path) -> Line:
    """`postrefresh run --no-thumbnails` on a fresh copy of the same 10,000 posts."""
    site = fresh_copy(pristine, work / "rB")
    row = bench.postrefresh(2, "postrefresh run --no-thumbnails", site)
    check = verify_site(site, pristine)
    return Line("B", "`postrefresh run --no-thumbnails` (broker-free)", f"{row.posts:,}",
                f"{row.run.wall:.2f}",
                fmt_int(row.calls), f"{row.units_per_post or 0:.4f}", f"{row.run.rss_mb:.1f}",
                f"{check.checked - check.wrong:,}/{check.checked:,}", row.note)


def row_c(bench: Bench, work: Path) -> Line:
    """bench/naive.py on 1,000 posts, extrapolated x10 to 10,000."""
    row = bench.naive(3, generate(work / "rC", 1_000))
    calls = row.calls or 0
    return Line("C", "bench/naive.py (1 call/post)", f"{row.posts:,} measured, x10 → {row.posts * 10:,}",
                f"{row.run.wall:.2f} → ≈{row.run.wall * 10:,.0f}", f"{calls:,} → ≈{calls * 10:,}",
                f"{row.units_per_post or 0:.4f}", f"{row.run.rss_mb:.1f}", "-",
                "extrapolated x10 for 10,000 posts (linear: one call per post in turn); " + row.note)


def fmt_int(value: int | None) -> str:
    """A count cell, '-' for nothing."""
    return "-" if value is None else f"{value:,}"


def markdown_tables(report: Report) -> list[str]:
    """The rows table, then row A's per-process memory table."""
    head = ["row", "run", "posts", "wall s", "API calls", "units/post", "peak RSS MB", "correct", "notes"]
    lines = markdown_table(head, "llrrrrrrl", [[r.label, r.what, r.posts, r.wall, r.calls, r.units, r.rss,
                                                r.correct, r.note] for r in report.lines])
    head = ["worker", "main VmHWM", "pool children", "child VmHWM max", "children VmHWM Σ",
            "PSS now, main + children", "wait4 ru_maxrss"]
    memory = [[m.name, f"{m.main_hwm:.1f}", str(len(m.children_hwm)), f"{max(m.children_hwm, default=0):.1f}",
               f"{sum(m.children_hwm):.1f}", f"{m.pss_total:.1f}", f"{m.wait4_maxrss:.1f}"]
              for m in report.workers]
    return [*lines, "", "Row A, memory of each worker (MiB), read from /proc just before its warm shutdown:",
            "", *markdown_table(head, "lrrrrrr", memory)]


def render(report: Report, command: str, started: datetime, latency: float, facts: list[str]) -> str:
    """The whole CELERY_RESULTS.md text."""
    workers = [f"  - `celery -A tasks worker -Q fetch -c {FETCH_CONCURRENCY} -E -n {n}@%h --loglevel INFO`"
               for n in FETCH_WORKERS]
    return "\n".join([
        "# Benchmark: the Celery path", "",
        f"Run {started:%Y-%m-%d %H:%M} UTC with `{command}` from the repo root; simulator in its own "
        f"process, API latency {latency:g} s; a private redis-server (`--save \"\" --appendonly no`); "
        "posts from bench/gen_posts.py (seed 0); thumbnails off (`thumbnails = false` in "
        "POSTREFRESH_CONFIG).", "", *facts, "", "Row A's processes:", "",
        "  - `postrefresh enqueue --all` (POSTREFRESH_SITE = a fresh copy of the 10,000 posts)", *workers,
        "  - `celery -A tasks worker -Q write -c 1 -E -n write@%h --loglevel INFO`", "",
        *markdown_tables(report), "",
        "Row A wall s: from the start of `postrefresh enqueue --all` until the enqueue has exited, the "
        "fetch and write queues are empty and no `postrefresh:queued:*` key is left (polled every 0.2 s). "
        "API calls in row A: quota units counted in Redis (1 unit per videos.list call). Peak RSS of a "
        "single process: ru_maxrss from wait4 (enqueue, rows B-D) or VmHWM (workers); a pool child's "
        "VmHWM counts the pages it shares with its parent, so the Σ column overstates real memory "
        "(PSS shares them out). Children are spawned with fork, not vfork, so a child's ru_maxrss "
        f"starts from this script's RSS at the fork (its peak over the whole run: {report.bench_hwm:.1f} "
        "MiB); every reading above that is the child's own. Row B runs on a fresh copy of the same "
        "posts as row A.", "",
        "## Targets", "", *report.verdicts, "", "## Observations", "", *report.observations,
    ])


def run_rows(args: argparse.Namespace, work: Path) -> Report:
    """Rows A-D with the simulator and Redis up; both are stopped on the way out."""
    report = Report()
    logs = work / "logs"
    with simulator(args.latency, logs) as sim_url, redis_server(logs) as redis_url:
        pristine = generate(work / "p10k", POSTS)
        celery = CeleryBench(sim_url, redis_url, work)
        row_a(celery, pristine, report)
        bench = Bench(sim_url, logs)
        report.lines.append(row_b(bench, pristine, work))
        report.lines.append(row_c(bench, work))
        if not args.skip_100k:
            row_d(celery, report)
        celery.client.close()
    report.bench_hwm = kib_field(os.getpid(), "VmHWM")
    return report


def main(argv: list[str] | None = None) -> int:
    """Run every row, print the tables and write bench/CELERY_RESULTS.md."""
    args = parse_args(__doc__, argv, skip_100k("row D"), LATENCY, KEEP)

    def run(started: Started) -> str:
        report = run_rows(args, started.work)
        facts = [*machine_facts(started.work), versions()]
        return render(report, started.command, started.at, args.latency, facts)

    return bench_main("celery_bench.py", "postrefresh-celery-bench-", RESULTS, args.keep, argv, run)


if __name__ == "__main__":
    sys.exit(main())
