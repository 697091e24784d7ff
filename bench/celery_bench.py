"""Benchmark the Celery path (enqueue, 1 fetch worker -c 4, 1 write worker -c 1) against `postrefresh run`.

One invocation measures: A, the Celery path on 3,000 posts with thumbnails, the workers started
beforehand, timed from the first enqueue to the last write and checked post by post; B, `run` on
a fresh copy of the same posts with thumbnails; D, `postrefresh enqueue --all` of 100,000 posts
with no worker. A private redis-server (never 6379) and the simulator run in their own processes;
the workers are real `celery -A tasks worker` processes. The tables are also written to
bench/CELERY_RESULTS.md with the date, the machine and the exact command.

    python bench/celery_bench.py [--skip-100k] [--latency 0.05] [--keep]
    python bench/celery_bench.py --posts 300 --posts-enqueue 3000   # a smoke run
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

# Run as `python bench/celery_bench.py`: bench/ is sys.path[0] and is not an installed package.
from celery_procs import CeleryBench, ProcMemory, Worker, redis_server, scan_logs, versions
from harness import (
    BENCH,
    KEEP,
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
from measured import kib_field, measure
from run_bench import Bench, Row
from site_check import check_site, fresh_copy, generate, last_write_ns, missing_thumbnails

RESULTS = BENCH / "CELERY_RESULTS.md"
FETCH_CONCURRENCY, WRITE_CONCURRENCY = 4, 1
SIZES = {"posts": 3_000, "posts_enqueue": 100_000}


@dataclass
class Report:
    """Everything the Markdown file shows."""

    lines: list[list[str]] = field(default_factory=list)
    workers: list[ProcMemory] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)
    celery_s: float = 0.0  # row A, first enqueue to last write
    enqueue_rss: float = 0.0  # row A's enqueue, for the flat-memory comparison
    bench_hwm: float = 0.0  # this script's own peak RSS: no child reading can be below its mark at fork


def correctness(site: Path, pristine: Path) -> tuple[str, bool]:
    """Every post against the simulator and its original, and every thumbnail stored."""
    check, missing = check_site(site, pristine), missing_thumbnails(site)
    return f"{check.summary()}; {missing:,} without a thumbnail", check.wrong == 0 and missing == 0


def row_a(celery: CeleryBench, pristine: Path, report: Report) -> None:
    """The Celery path with thumbnails: workers ready first, then the enqueue, timed to the last write."""
    site = fresh_copy(pristine, celery.work / "rA")
    celery.client.flushall()
    env = celery.env | {"POSTREFRESH_SITE": str(site)}
    workers = [Worker("fetch", "fetch", FETCH_CONCURRENCY, env, celery.logs),
               Worker("write", "write", WRITE_CONCURRENCY, env, celery.logs)]
    try:
        for worker in workers:
            worker.wait_ready()
        drain = celery.run_to_drain(site)
        memories = [w.memory() for w in workers]
        report.workers = [replace(m, wait4_maxrss=w.stop()) for m, w in zip(memories, workers, strict=True)]
    finally:
        for worker in workers:
            worker.kill()
    report.argv = [" ".join(["celery", *w.argv[1:]]) for w in workers]
    enqueue, posts = drain.enqueue, sum(1 for _ in (pristine / "_posts").iterdir())
    report.celery_s = (last_write_ns(site) - drain.started_ns) / 1e9
    report.enqueue_rss = enqueue.rss_mb
    units, logs = celery.total("postrefresh:quota:*"), scan_logs([workers[0].log])
    written = ", ".join(f"{k} {v}" for k, v in sorted(celery.outcomes().items()))
    right, ok = correctness(site, pristine)
    report.lines.append([
        "A", f"Celery: enqueue + 1 fetch worker (-c {FETCH_CONCURRENCY}) + 1 write worker (-c 1)",
        f"{posts:,}", f"{report.celery_s:.2f}", f"{units:,}", f"{units / posts:.4f}",
        f"enqueue {enqueue.rss_mb:.1f}; workers below",
        f"drained {drain.wall:.2f} s; enqueue {enqueue.wall:.2f} s, exit {enqueue.exit_code}; write "
        f"outcomes: {written}; {logs['calls']} videos.list in the fetch log ({logs['full']} of 50 ids, "
        f"smallest {logs['smallest']}); {right}"])
    report.verdicts += [
        verdict("A quota (target 0.020 units/post: one call per 50 ids, + Celery retries)",
                f"{units} units = {units / posts:.4f}/post; {logs['celery_retries']} Celery retries, "
                f"{logs['attempt_failures']} failed attempts",
                units <= math.ceil(posts / 50) + logs["celery_retries"]),
        verdict("A correct (stats = simulator, every other byte kept, refreshed_at, thumbnail stored)",
                right, ok)]


def row_b(bench: Bench, pristine: Path, work: Path, report: Report) -> None:
    """`postrefresh run` with thumbnails on a fresh copy of row A's posts; the ratio A / B."""
    site = fresh_copy(pristine, work / "rB")
    row: Row = bench.postrefresh("B", "postrefresh run (with thumbnails)", site, thumbnails=True)
    right, ok = correctness(site, pristine)
    report.lines.append(["B", f"`{row.what}`, broker-free", f"{row.posts:,}", f"{row.run.wall:.2f}",
                         f"{row.calls or 0:,}", f"{row.units_per_post or 0:.4f}", f"{row.run.rss_mb:.1f}",
                         f"in-run {row.in_run():.2f} s; {row.note}; {right}"])
    ratio = report.celery_s / row.run.wall
    report.verdicts += [
        verdict("B correct", right, ok),
        verdict(f"Celery path vs `run`, {row.posts:,} posts with thumbnails (target ≤ 1.5x; A first "
                "enqueue → last write / B wall)",
                f"{report.celery_s:.2f} s / {row.run.wall:.2f} s = {ratio:.2f}x", ratio <= 1.5)]


def row_d(celery: CeleryBench, posts: int, report: Report) -> None:
    """`postrefresh enqueue --all` of `posts` posts into Redis with no worker running."""
    site = generate(celery.work / "rD", posts)
    celery.client.flushall()
    argv, env = celery.enqueue_argv(site)
    run = measure(argv, env, celery.logs, "rowD-enqueue")
    memory = celery.client.info("memory")["used_memory_human"]
    queued, pending = celery.client.llen("fetch"), celery.client.zcard("postrefresh:pending")
    celery.client.flushall()
    out = (celery.logs / "rowD-enqueue.out").read_text(errors="replace").strip().splitlines()
    report.lines.append([
        "D", "`postrefresh enqueue --all`, no workers", f"{posts:,}", f"{run.wall:.2f}", "0", "-",
        f"{run.rss_mb:.1f}", f"{out[-1] if out else 'no output'}; fetch queue {queued:,}, pending set "
        f"{pending:,}; Redis used_memory after: {memory}; exit {run.exit_code}"])
    ratio = run.rss_mb / report.enqueue_rss if report.enqueue_rss else math.inf
    report.verdicts += [
        verdict(f"D enqueue {posts:,} posts (target < 20 s, wall)", f"{run.wall:.1f} s",
                run.wall < 20 and run.exit_code == 0 and bool(out) and f"queued: {posts}  " in out[-1]),
        verdict("D flat memory (enqueue peak RSS, D vs A's enqueue; target < 1.5x)",
                f"{run.rss_mb:.1f} MB vs {report.enqueue_rss:.1f} MB ({ratio:.2f}x)", ratio < 1.5),
        f"- D Redis memory after queueing {posts:,} tasks: {memory}"]


def memory_table(report: Report) -> list[str]:
    """Row A's per-process memory table."""
    head = ["worker", "main VmHWM", "pool children", "child VmHWM max", "children VmHWM Σ",
            "PSS now, main + children", "wait4 ru_maxrss"]
    return markdown_table(head, "lrrrrrr", [
        [m.name, f"{m.main_hwm:.1f}", str(len(m.children_hwm)), f"{max(m.children_hwm, default=0):.1f}",
         f"{sum(m.children_hwm):.1f}", f"{m.pss_total:.1f}", f"{m.wait4_maxrss:.1f}"]
        for m in report.workers])


def render(report: Report, args: argparse.Namespace, started: Started, facts: list[str]) -> str:
    """The whole CELERY_RESULTS.md text."""
    head = ["row", "run", "posts", "s", "API calls", "units/post", "peak RSS MB", "notes"]
    return "\n".join([
        "# Benchmark: the Celery path", "",
        f"Run {started.at:%Y-%m-%d %H:%M} UTC with `{started.command}` from the repo root; simulator in "
        f"its own process, API latency {args.latency:g} s; a private redis-server (`--save \"\" "
        "--appendonly no`); posts from bench/gen_posts.py (seed 0); thumbnails on (`thumbnails = true` "
        "in POSTREFRESH_CONFIG) in rows A and B.", "", *smoke_note(args, SIZES), *facts, "",
        "Row A's workers, started and `ready` before the enqueue:", "",
        *[f"  - `{argv}`" for argv in report.argv], "",
        *markdown_table(head, "llrrrrrl", report.lines), "",
        "Row A, memory of each worker (MiB), read from /proc just before its warm shutdown:", "",
        *memory_table(report), "",
        "s: row A from the start of `postrefresh enqueue --all` (the first enqueue) to the last write "
        "(the newest mtime of a post, thumbnail or history file, or of their folders, which a rename "
        "stamps); 'drained' is when the queues, kombu's `unacked` and every `postrefresh:queued:*` key "
        "were empty (polled every 0.2 s). Rows B and D: wall s of the process. API calls in row A: "
        "quota units counted in Redis (1 unit per videos.list call). Peak RSS: the largest process of "
        "the command's tree (wait4's ru_maxrss and each descendant's sampled VmHWM) or VmHWM (workers); "
        "a pool child's VmHWM counts the pages it shares with its parent, so the Σ column overstates "
        "real memory (PSS shares them out). Children are spawned with fork, not vfork, so a child's "
        "ru_maxrss starts from this script's RSS at the fork (its peak over the whole run: "
        f"{report.bench_hwm:.1f} MiB). Row B runs on a fresh copy of row A's posts.", "",
        "## Targets", "", *report.verdicts,
    ])


def run_rows(args: argparse.Namespace, work: Path) -> Report:
    """Rows A, B and D with the simulator and Redis up; both are stopped on the way out."""
    report = Report()
    logs = work / "logs"
    with simulator(args.latency, logs) as sim_url, redis_server(logs) as redis_url:
        pristine = generate(work / "pA", args.posts)
        celery = CeleryBench(sim_url, redis_url, work, thumbnails=True)
        row_a(celery, pristine, report)
        row_b(Bench(sim_url, logs), pristine, work, report)
        if not args.skip_100k:
            row_d(celery, args.posts_enqueue, report)
        celery.client.close()
    report.bench_hwm = kib_field(os.getpid(), "VmHWM")
    return report


def main(argv: list[str] | None = None) -> int:
    """Run every row, print the tables and write bench/CELERY_RESULTS.md."""
    args = parse_args(__doc__, argv, skip_100k("row D"), *size_options(SIZES), LATENCY, KEEP)

    def run(started: Started) -> str:
        report = run_rows(args, started.work)
        return render(report, args, started, [*machine_facts(started), versions()])

    written_to = RESULTS if full_size(args, SIZES) else None
    return bench_main("celery_bench.py", "postrefresh-celery-bench-", written_to, args.keep, argv, run)


if __name__ == "__main__":
    sys.exit(main())
