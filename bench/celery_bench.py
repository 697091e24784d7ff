"""Benchmark the Celery path (enqueue, 2 fetch workers, 1 write worker) against `postrefresh run`.

A private redis-server (never 6379) and the simulator run in their own processes; the workers
are real `celery -A tasks worker` processes. The table is also written to
bench/CELERY_RESULTS.md with the date, the machine and the exact command.

    python bench/celery_bench.py [--skip-100k] [--latency 0.05] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import redis
import yaml

# Run as `python bench/celery_bench.py`: bench/ is sys.path[0] and is not an installed package.
from run_bench import (
    BENCH,
    KEY,
    YAML_LOADER,
    Bench,
    Check,
    Measured,
    free_port,
    fresh_copy,
    generate,
    machine_facts,
    measure,
    simulator,
    spawn_children_with_fork,
    split_post,
    stop,
    verify_site,
)

ROOT = BENCH.parent
RESULTS = BENCH / "CELERY_RESULTS.md"
BIN = Path(sys.executable).parent
FETCH_WORKERS, FETCH_CONCURRENCY = ("fetch1", "fetch2"), 8
POSTS = 10_000
DRAIN_TIMEOUT = 1_800.0
MIB = 1024


@dataclass(frozen=True)
class ProcMemory:
    """One worker's memory before it stopped: main VmHWM, pool children's VmHWM, PSS now (MiB)."""

    name: str
    main_hwm: float
    children_hwm: list[float]
    pss_total: float
    wait4_maxrss: float = 0.0  # max over the main process and every child it reaped


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


@contextlib.contextmanager
def redis_server(logs: Path) -> Iterator[str]:
    """A private redis-server on a free port, no persistence; yield its URL; stop it after."""
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(logs)]
    with (logs / "redis.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start; see redis.log") from None
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        stop(proc)


def kib_field(pid: int, name: str, table: str = "status") -> float:
    """A `Name:  N kB` field of /proc/<pid>/status (or smaps_rollup), in MiB."""
    text = Path(f"/proc/{pid}/{table}").read_text()
    match = re.search(rf"^{name}:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) / MIB if match else 0.0


def children_of(pid: int) -> list[int]:
    """The pids whose parent is `pid` (a prefork worker's pool)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


class Worker:
    """One `celery -A tasks worker` process, in its own process group."""

    def __init__(self, name: str, queue: str, concurrency: int, env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.log = logs / f"{name}.log"
        self.argv = [str(BIN / "celery"), "-A", "tasks", "worker", "-Q", queue, "-c", str(concurrency),
                     "-E", "-n", f"{name}@%h", "--loglevel", "INFO"]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait for the worker's `ready.` log line."""
        deadline = time.monotonic() + timeout
        while " ready." not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.name} did not start; see {self.log}")
            time.sleep(0.2)

    def memory(self) -> ProcMemory:
        """Peak RSS of the main process and of each pool child, read while they still run."""
        pids = [self.proc.pid, *children_of(self.proc.pid)]
        pss = sum(kib_field(pid, "Pss", "smaps_rollup") for pid in pids)
        return ProcMemory(self.name, kib_field(pids[0], "VmHWM"),
                          [kib_field(pid, "VmHWM") for pid in pids[1:]], pss)

    def stop(self, timeout: float = 60.0) -> float:
        """Warm shutdown (SIGTERM), kill -9 of the group if it hangs; the wait4 ru_maxrss in MiB."""
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.killpg(self.proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(self.proc.pid, 0)
                break
            time.sleep(0.1)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return usage.ru_maxrss / MIB

    def kill(self) -> None:
        """kill -9 the worker and its pool (only after a failure)."""
        if self.proc.returncode is None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class CeleryBench:
    """The Celery rows, sharing the simulator, the private Redis and the logs folder."""

    def __init__(self, sim_url: str, redis_url: str, work: Path) -> None:
        self.redis_url = redis_url
        self.client = redis.Redis.from_url(redis_url)
        self.work = work
        self.logs = work / "logs"
        config = work / "celery.toml"
        config.write_text("thumbnails = false\n", encoding="utf-8")
        base = {k: v for k, v in os.environ.items() if not k.startswith(("POSTREFRESH", "YOUTUBE", "CELERY"))}
        self.env = base | {"REDIS_URL": redis_url, "POSTREFRESH_CONFIG": str(config),
                           "YOUTUBE_API_KEY": KEY, "YOUTUBE_API_URL": sim_url + "/youtube/v3",
                           "YOUTUBE_THUMBNAIL_URL": sim_url, "PYTHONPATH": str(ROOT)}

    def enqueue_argv(self, site: Path) -> tuple[list[str], dict[str, str]]:
        """`postrefresh enqueue --all` and its environment for `site`."""
        return [str(BIN / "postrefresh"), "enqueue", "--all"], self.env | {"POSTREFRESH_SITE": str(site)}

    def drained(self) -> bool:
        """Both queues empty and no post still marked queued (a write releases its post)."""
        if self.client.llen("fetch") or self.client.llen("write"):
            return False
        return next(self.client.scan_iter(match="postrefresh:queued:*", count=1000), None) is None

    def total(self, pattern: str) -> int:
        """The sum of every counter key matching `pattern` (the quota is kept per Pacific day)."""
        return sum(int(self.client.get(key) or 0) for key in self.client.scan_iter(match=pattern))

    def outcomes(self) -> dict[str, int]:
        """The write outcomes the workers counted, over every day key."""
        counts: dict[str, int] = {}
        for key in self.client.scan_iter(match="postrefresh:outcomes:*"):
            for raw, n in self.client.hgetall(key).items():
                status = raw.decode() if isinstance(raw, bytes) else str(raw)
                counts[status] = counts.get(status, 0) + int(n)
        return counts

    def run_to_drain(self, site: Path) -> tuple[float, Measured]:
        """Start the enqueue; wall seconds until it has exited and every post is written."""
        argv, env = self.enqueue_argv(site)
        os.sync()
        started = time.perf_counter()
        with ThreadPoolExecutor(1) as pool:
            enqueue = pool.submit(measure, argv, env, self.logs, "rowA-enqueue")
            shown = started
            while not (enqueue.done() and self.drained()):
                now = time.perf_counter()
                if now - started > DRAIN_TIMEOUT:
                    raise RuntimeError(f"row A not drained after {DRAIN_TIMEOUT:g}s; see {self.logs}")
                if now - shown > 10:
                    shown = now
                    print(f"  {now - started:5.0f}s fetch {self.client.llen('fetch')} "
                          f"write {self.client.llen('write')}", file=sys.stderr)
                time.sleep(0.2)
            wall = time.perf_counter() - started
        return wall, enqueue.result()

    def row_a(self, pristine: Path, report: Report) -> None:
        """10,000 posts: enqueue, 2 fetch workers (-c 8), 1 write worker (-c 1), thumbnails off."""
        site = fresh_copy(pristine, self.work / "rA")
        self.client.flushall()
        env = self.env | {"POSTREFRESH_SITE": str(site)}
        workers = [Worker(n, "fetch", FETCH_CONCURRENCY, env, self.logs) for n in FETCH_WORKERS]
        workers.append(Worker("write", "write", 1, env, self.logs))
        try:
            for worker in workers:
                worker.wait_ready()
            wall, enqueue = self.run_to_drain(site)
            memories = [w.memory() for w in workers]
            report.workers = [replace(m, wait4_maxrss=w.stop())
                              for m, w in zip(memories, workers, strict=True)]
        finally:
            for worker in workers:
                worker.kill()
        report.enqueue_rss_10k = enqueue.rss_mb
        units, outcomes = self.total("postrefresh:quota:*"), self.outcomes()
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

    def row_d(self, report: Report) -> None:
        """100,000 posts enqueued into Redis with no worker running."""
        site = generate(self.work / "rD", 100_000)
        self.client.flushall()
        argv, env = self.enqueue_argv(site)
        run = measure(argv, env, self.logs, "rowD-enqueue")
        memory = self.client.info("memory")["used_memory_human"]
        queued = self.client.llen("fetch")
        pending = self.client.zcard("postrefresh:pending")
        self.client.flushall()
        note = (f"{enqueue_line(self.logs / 'rowD-enqueue.out')}; fetch queue {queued:,}, pending set "
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


def scan_logs(logs: list[Path]) -> dict[str, int]:
    """From the fetch workers' logs: videos.list calls and ids, Celery retries, failed attempts."""
    text = "\n".join(log.read_text(errors="replace") for log in logs)
    batches = [int(n) for n in re.findall(r"videos\.list for (\d+) ids", text)]
    return {"calls": len(batches), "ids": sum(batches), "smallest": min(batches, default=0),
            "full": sum(1 for n in batches if n == 50), "celery_retries": len(re.findall(r"Retry in", text)),
            "attempt_failures": len(re.findall(r"videos\.list attempt \d+", text))}


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


def verdict(name: str, figure: str, ok: bool) -> str:
    """One target line."""
    return f"- {name}: {figure} — {'met' if ok else '**MISSED**'}"


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
    lines = ["| row | run | posts | wall s | API calls | units/post | peak RSS MB | correct | notes |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {r.label} | {r.what} | {r.posts} | {r.wall} | {r.calls} | {r.units} | {r.rss} | "
              f"{r.correct} | {r.note} |" for r in report.lines]
    lines += ["", "Row A, memory of each worker (MiB), read from /proc just before its warm shutdown:", "",
              "| worker | main VmHWM | pool children | child VmHWM max | children VmHWM Σ | PSS now, main + "
              "children | wait4 ru_maxrss |", "|---|---:|---:|---:|---:|---:|---:|"]
    for m in report.workers:
        kids = m.children_hwm
        lines.append(f"| {m.name} | {m.main_hwm:.1f} | {len(kids)} | {max(kids, default=0):.1f} | "
                     f"{sum(kids):.1f} | {m.pss_total:.1f} | {m.wait4_maxrss:.1f} |")
    return lines


def versions() -> str:
    """redis-server and celery versions."""
    server = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    celery = subprocess.run([str(BIN / "celery"), "--version"], capture_output=True, text=True).stdout
    found = next((w for w in server if w.startswith("v=")), "v=?")[2:]
    return f"- redis-server {found}; celery {celery.strip() or '?'}"


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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-100k", action="store_true", help="leave out row D (100,000 posts)")
    parser.add_argument("--latency", type=float, default=0.05, help="simulated API latency, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (sites and logs)")
    return parser.parse_args(argv)


def run_rows(args: argparse.Namespace, work: Path) -> Report:
    """Rows A-D with the simulator and Redis up; both are stopped on the way out."""
    report = Report()
    logs = work / "logs"
    with simulator(args.latency, logs) as sim_url, redis_server(logs) as redis_url:
        pristine = generate(work / "p10k", POSTS)
        celery = CeleryBench(sim_url, redis_url, work)
        celery.row_a(pristine, report)
        bench = Bench(sim_url, logs)
        report.lines.append(row_b(bench, pristine, work))
        report.lines.append(row_c(bench, work))
        if not args.skip_100k:
            celery.row_d(report)
        celery.client.close()
    report.bench_hwm = kib_field(os.getpid(), "VmHWM")
    return report


def main(argv: list[str] | None = None) -> int:
    """Run every row, print the tables and write bench/CELERY_RESULTS.md."""
    args = parse_args(argv)
    spawn_children_with_fork()
    command = " ".join(["python", "bench/celery_bench.py", *(sys.argv[1:] if argv is None else argv)])
    work = Path(tempfile.mkdtemp(prefix="postrefresh-celery-bench-", dir="/tmp"))
    (work / "logs").mkdir()
    started = datetime.now(UTC)
    try:
        report = run_rows(args, work)
        text = render(report, command, started, args.latency, [*machine_facts(work), versions()])
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(text)
    RESULTS.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
