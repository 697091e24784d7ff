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
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

# Run as `python bench/load_bench.py`: bench/ is sys.path[0] and is not an installed package.
from celery_bench import BIN, ROOT, CeleryBench, Worker, kib_field, redis_server, scan_logs, versions
from run_bench import (
    Bench,
    free_port,
    fresh_copy,
    generate,
    machine_facts,
    spawn_children_with_fork,
    split_post,
    stop,
    wait_until_answering,
)

from worker.simulator.truth import expected_fields

RESULTS = Path(__file__).resolve().parent / "LOAD_RESULTS.md"
KEY = "bench-key"
STAT_FIELDS = {b"viewcount": "statistics.viewCount", b"likeCount": "statistics.likeCount",
               b"commentCount": "statistics.commentCount"}
KEY_LINE = re.compile(rb"([A-Za-z_][\w-]*):[ \t]*(.*?)\r?\n?\Z", re.S)
EXAMPLES = 5
SAMPLE_EVERY, BUMP_EVERY, BUMPS_STOP_BEFORE_END, FLAT_AFTER = 30.0, 120.0, 240.0, 300.0
SOAK_CONFIG = """thumbnails = false
scan_every = "20s"
tier_new_every = "2m"
tier_recent_every = "2m"
tier_old_every = "2m"
tier_unavailable_every = "2m"
# Shorter than an epoch, so a bump is seen by the next refresh rather than 15 minutes later.
stats_cache_ttl = 30
"""
# The simulator in its own process, as in run_bench, plus SIGUSR1 to move to the next epoch.
SIMULATOR_CODE = """
import dataclasses, signal, sys
from worker.simulator.config import SimulatorConfig
from worker.simulator.server import YouTubeSimulator
port, latency, rate, key = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
config = SimulatorConfig(latency=latency, fault_rate=rate, api_keys=frozenset({key}))
with YouTubeSimulator(config, port=port) as sim:
    def bump(signum, frame):
        sim.config = dataclasses.replace(sim.config, epoch=sim.config.epoch + 1)
        print(f"epoch {sim.config.epoch}", flush=True)
    signal.signal(signal.SIGUSR1, bump)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()
"""


# ---------------------------------------------------------------- the checker

@dataclass
class SiteCheck:
    """Every post of a site checked: how many were right, wrong, untouched, and the first problems."""

    checked: int = 0
    right: int = 0
    wrong: int = 0
    untouched: int = 0  # byte-identical to the pristine copy: never refreshed (counted in wrong)
    examples: list[str] = field(default_factory=list)
    by_epoch: Counter[int] = field(default_factory=Counter)
    peak_mb: float = 0.0  # this process's VmHWM over the check alone (the mark is reset before it)

    def summary(self) -> str:
        """`right/checked`, and the wrong and untouched counts."""
        return (f"{self.right:,}/{self.checked:,} right, {self.wrong:,} wrong "
                f"({self.untouched:,} of them never refreshed); checker peak RSS {self.peak_mb:.1f} MB")


def check_site(site: Path, pristine: Path, epochs: Sequence[int] = (0,)) -> SiteCheck:
    """Check every post of `pristine` against its refreshed copy in `site`, one file at a time.

    `epochs`: the simulator epochs whose values count as right, preferred first; a post is
    right when all its stats equal one of them. Memory stays bounded: no list of posts is kept.
    """
    result = SiteCheck()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM, so peak_mb is the check's own
    with os.scandir(pristine / "_posts") as entries:
        for entry in entries:
            if not entry.is_file():
                continue
            result.checked += 1
            problem, epoch = check_post(site / "_posts" / entry.name, Path(entry.path), epochs)
            if problem is None:
                result.right += 1
                result.by_epoch[epoch or 0] += 1
                continue
            result.wrong += 1
            result.untouched += problem.endswith("never refreshed")
            if len(result.examples) < EXAMPLES:
                result.examples.append(f"{entry.name}: {problem}")
    result.peak_mb = float(kib_field(os.getpid(), "VmHWM"))
    return result


def check_post(path: Path, original: Path, epochs: Sequence[int]) -> tuple[str | None, int | None]:
    """(the problem with one refreshed post or None, the epoch its values match)."""
    old_data, new_data = original.read_bytes(), path.read_bytes() if path.exists() else b""
    if old_data == new_data:
        return "never refreshed", None
    try:
        old_head, old_body = split_post(old_data)
        new_head, new_body = split_post(new_data)
    except ValueError:
        return "front matter unreadable after the refresh", None
    if new_body != old_body:
        return "body bytes changed", None
    old_lines, new_lines = head_lines(old_head), head_lines(new_head)
    old_stats = {k: v for k, v in map(key_value, old_lines) if k in STAT_FIELDS}
    stats, problem = match_lines(old_lines, new_lines)
    if problem:
        return problem, None
    vid_id = dict(map(key_value, old_lines)).get(b"vid_id", b"").decode()
    for epoch in epochs:
        if not stat_problem(stats, old_stats, expected_fields(vid_id, epoch)):
            return None, epoch
    return stat_problem(stats, old_stats, expected_fields(vid_id, epochs[0])), None


def head_lines(head: bytes) -> list[bytes]:
    """Front-matter lines, each with its line ending (split_post leaves the last one without)."""
    return (head + (b"\r\n" if b"\r\n" in head else b"\n")).splitlines(keepends=True)


def key_value(line: bytes) -> tuple[bytes | None, bytes]:
    """(top-level key, unquoted value) of a `key: value` line; (None, line) for anything else."""
    match = KEY_LINE.fullmatch(line)
    if match is None:
        return None, line
    value = match.group(2).strip()
    if len(value) >= 2 and value[:1] == value[-1:] and value[:1] in (b'"', b"'"):
        value = value[1:-1]
    return match.group(1), value


def match_lines(old: list[bytes], new: list[bytes]) -> tuple[dict[bytes, bytes], str | None]:
    """Walk the new front matter against the old: (the stat values found, the first problem)."""
    kept = [line for line in old if key_value(line)[0] not in STAT_FIELDS]
    stats: dict[bytes, bytes] = {}
    at, in_history, refreshed_at = 0, False, 0
    for line in new:
        if at < len(kept) and line == kept[at]:
            at, in_history = at + 1, False
            continue
        key, value = key_value(line)
        if in_history and key is None and line[:1] in (b" ", b"\t", b"-"):
            continue
        in_history = False
        if key in STAT_FIELDS and key not in stats:
            stats[key] = value
        elif key == b"refreshed_at" and not refreshed_at:
            refreshed_at += 1
        elif key == b"history" and not value:
            in_history = True
        else:
            return stats, f"unexpected front-matter line {line!r}"
    if at < len(kept):
        return stats, f"original line missing or out of order: {kept[at]!r}"
    return stats, None if refreshed_at else "no refreshed_at line"


def stat_problem(stats: dict[bytes, bytes], old: dict[bytes, bytes], truth: dict[str, str]) -> str | None:
    """What differs between the stat lines and the truth (hidden likes: the old value stays)."""
    for key, name in STAT_FIELDS.items():
        want = truth[name].encode() if name in truth else old.get(key)
        if stats.get(key) != want:
            return f"{key.decode()} {stats.get(key)!r}, want {want!r}"
    return None


# ---------------------------------------------------------------- processes

@dataclass
class Simulator:
    """The simulator process: its URL and the epoch it serves now."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    epoch: int = 0

    def bump(self) -> int:
        """Serve the next epoch from now on; wait until the simulator says it does."""
        self.epoch += 1
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while f"epoch {self.epoch}\n" not in self.log.read_text():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the simulator did not move to epoch {self.epoch}")
            time.sleep(0.05)
        return self.epoch


@contextlib.contextmanager
def simulator(latency: float, fault_rate: float, logs: Path) -> Iterator[Simulator]:
    """The simulator in its own process with `fault_rate` faults; stopped on the way out."""
    port, log = free_port(), logs / "simulator.log"
    argv = [sys.executable, "-c", SIMULATOR_CODE, str(port), str(latency), str(fault_rate), KEY]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_answering(url, proc)
        yield Simulator(url, proc, log)
    finally:
        stop(proc)


class Beat:
    """`celery -A tasks beat` with the plain file scheduler, in its own process group."""

    def __init__(self, env: dict[str, str], work: Path) -> None:
        self.log = work / "logs" / "beat.log"
        self.argv = argv = [str(BIN / "celery"), "-A", "tasks", "beat", "-S", "celery.beat:Scheduler",
                "--schedule", str(work / "beat-schedule"), "--loglevel", "INFO"]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def kill(self) -> None:
        """Stop beat (SIGTERM, then SIGKILL of its group)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def rss_mib(pid: int) -> float:
    """VmRSS of one process now, 0 when it is gone."""
    try:
        return float(kib_field(pid, "VmRSS"))
    except OSError:
        return 0.0


def children_of(pid: int) -> list[int]:
    """The direct children of `pid`, from /proc/<pid>/task/*/children."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in children.read_text().split()]
    return found


def load() -> str:
    """The 1-minute load average now."""
    return f"{os.getloadavg()[0]:.2f}"


# ---------------------------------------------------------------- rows 1 and 2

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
    row = Bench(sim.url, work / "logs").postrefresh(1, "run", site)
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
        wall, enqueue = bench.run_to_drain(site)
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


# ---------------------------------------------------------------- the soak

@dataclass
class Soak:
    """What the soak saw: the samples, the epochs, the final check and how long it ran."""

    minutes: float = 0.0
    samples: list[dict[str, float]] = field(default_factory=list)
    bumps: list[tuple[float, int]] = field(default_factory=list)
    check: SiteCheck | None = None
    load: str = ""
    commands: list[str] = field(default_factory=list)
    drained: str = ""
    error: str = ""


def sample(bench: CeleryBench, procs: dict[str, int], started: float) -> dict[str, float]:
    """One sample: Redis memory and keys, each process's main and pool RSS, posts refreshed so far."""
    info = bench.client.info("memory")
    row = {"t": time.monotonic() - started, "redis used_memory MiB": info["used_memory"] / 2**20,
           "redis keys": float(bench.client.dbsize())}
    for name, pid in procs.items():
        row[f"{name} main"] = rss_mib(pid)
        if name != "beat":
            row[f"{name} pool Σ"] = sum(rss_mib(child) for child in children_of(pid))
    row["refreshed"] = float(bench.outcomes().get("refreshed", 0))
    row["load"] = os.getloadavg()[0]
    return row


def soak(sim: Simulator, redis_url: str, work: Path, posts: int, result: Soak) -> None:
    """Beat + scan + 2 fetch + 1 write workers over `posts` posts for `result.minutes`, sampling memory."""
    pristine = generate(work / "p-soak", posts)
    site = fresh_copy(pristine, work / "soak")
    bench = CeleryBench(sim.url, redis_url, work)
    (work / "soak.toml").write_text(SOAK_CONFIG, encoding="utf-8")
    bench.client.flushall()
    env = bench.env | {"POSTREFRESH_SITE": str(site), "POSTREFRESH_CONFIG": str(work / "soak.toml")}
    workers = [Worker("scan", "scan", 1, env, bench.logs),
               *(Worker(n, "fetch", 8, env, bench.logs) for n in ("fetch1", "fetch2")),
               Worker("write", "write", 1, env, bench.logs)]
    beat: Beat | None = None
    try:
        for worker in workers:
            worker.wait_ready()
        beat = Beat(env, work)
        procs = {w.name: w.proc.pid for w in workers} | {"beat": beat.proc.pid}
        result.commands = [f"`{' '.join(w.argv)}`" for w in workers] + [f"`{' '.join(beat.argv)}`"]
        before = load()
        soak_loop(sim, bench, procs, [*(w.proc for w in workers), beat.proc], result.minutes * 60, result)
        beat.kill()
        result.drained = drain(bench)
        result.load = f"{before} → {load()}"
        for worker in workers:
            worker.stop()
    finally:
        if beat is not None:
            beat.kill()
        for worker in workers:
            worker.kill()
    bench.client.close()
    result.check = check_site(site, pristine, range(sim.epoch, -1, -1))


def soak_loop(sim: Simulator, bench: CeleryBench, procs: dict[str, int], alive: list[subprocess.Popen[bytes]],
              seconds: float, result: Soak) -> None:
    """Sample every 30 s and bump the epoch every 2 minutes, stopping the bumps 4 minutes before the end."""
    started = time.monotonic()
    next_sample, next_bump = started, started + BUMP_EVERY
    while (now := time.monotonic()) < started + seconds:
        if any(proc.poll() is not None for proc in alive):
            raise RuntimeError("a soak process exited early; see the logs")
        if now >= next_sample:
            result.samples.append(sample(bench, procs, started))
            print(f"  soak {now - started:5.0f}s {result.samples[-1]}", file=sys.stderr)
            next_sample += SAMPLE_EVERY
        if now >= next_bump and now <= started + seconds - BUMPS_STOP_BEFORE_END:
            result.bumps.append((now - started, sim.bump()))
            next_bump += BUMP_EVERY
        time.sleep(0.5)
    result.samples.append(sample(bench, procs, started))


def drain(bench: CeleryBench, timeout: float = 180.0) -> str:
    """After beat stopped: wait until the queued refreshes are written (or the timeout)."""
    started = time.monotonic()
    while not bench.drained():
        if time.monotonic() - started > timeout:
            return f"not drained after {timeout:g} s"
        time.sleep(0.5)
    return f"drained {time.monotonic() - started:.1f} s after beat stopped"


# ---------------------------------------------------------------- the report

def flat_table(samples: list[dict[str, float]]) -> list[str]:
    """Start / at 5 min / end / max of each sampled figure, and whether it stayed flat."""
    base = next((s for s in samples if s["t"] >= FLAT_AFTER), samples[-1])
    lines = [f"| figure | start | at {base['t'] / 60:.1f} min | end | max | flat (end ≤ 1.2 x at 5 min) |",
             "|---|---:|---:|---:|---:|---|"]
    for name in samples[0]:
        if name in ("t", "refreshed", "load"):
            continue
        values = [s[name] for s in samples]
        flat = values[-1] <= 1.2 * base[name]
        lines.append(f"| {name} | {values[0]:,.1f} | {base[name]:,.1f} | {values[-1]:,.1f} "
                     f"| {max(values):,.1f} | {'yes' if flat else '**NO**'} |")
    return lines


def samples_table(samples: list[dict[str, float]]) -> list[str]:
    """Every sample, one line each."""
    names = list(samples[0])
    lines = ["| " + " | ".join("t s" if n == "t" else n for n in names) + " |",
             "|" + "---:|" * len(names)]
    lines += ["| " + " | ".join(f"{s[n]:,.0f}" if n in ("t", "redis keys", "refreshed") else f"{s[n]:,.1f}"
                                for n in names) + " |" for s in samples]
    return lines


def row_lines(rows: list[Row]) -> list[str]:
    """The load table."""
    lines = ["| run | posts | wall s | API calls (units) | units/post | peak RSS MB | checker | load 1-min "
             "start → end | notes |", "|---|---:|---:|---:|---:|---|---|---|---|"]
    lines += [f"| {r.what} | {r.posts:,} | {r.wall:.1f} | {r.calls} | {r.units} | {r.rss} | "
              f"{r.check.summary()} | {r.load} | {r.note} |" for r in rows]
    for r in rows:
        lines += [f"- {r.what}: first problems: " + ("none" if not r.check.examples else "")]
        lines += [f"  - {e}" for e in r.check.examples]
    return lines


def soak_lines(s: Soak, posts: int) -> list[str]:
    """The soak section."""
    if not s.samples:
        return [f"## Soak\n\nFAILED before the first sample: {s.error}"] if s.error else []
    check = s.check or SiteCheck()
    final = max((e for _, e in s.bumps), default=0)
    bumps = ", ".join(f"{t / 60:.1f} min → {e}" for t, e in s.bumps) or "none"
    return ["## Soak", "",
            f"{posts:,} posts, ran {s.minutes:g} minutes (plus the drain); load 1-min {s.load}. Beat sends "
            "`postrefresh.scan` every 20 s; every tier is due every 2 m; `stats_cache_ttl = 30`. Epoch bumps "
            f"(time → epoch): {bumps}; none in the last {BUMPS_STOP_BEFORE_END / 60:g} minutes. {s.drained}.",
            *(["", f"**FAILED after {s.samples[-1]['t'] / 60:.1f} min: {s.error}**"] if s.error else []),
            "", "Processes:", "", *[f"  - {c}" for c in s.commands], "",
            *flat_table(s.samples), "",
            "Flat: the end value is at most 1.2 x the value of the first sample at or after 5 minutes. "
            "RSS columns: VmRSS (MiB) of the worker's main process and the sum over its pool children.", "",
            f"Checker at the end: {check.summary()}; posts whose values match epoch {final} (the last): "
            f"{check.by_epoch.get(final, 0):,}; an earlier epoch: "
            f"{sum(n for e, n in check.by_epoch.items() if e != final):,} "
            f"({dict(sorted(check.by_epoch.items()))}).",
            *[f"  - {e}" for e in check.examples], "",
            "<details><summary>Every sample</summary>", "", *samples_table(s.samples), "", "</details>"]


def render(rows: list[Row], celery_commands: list[str], s: Soak, args: argparse.Namespace, command: str,
           started: datetime, facts: list[str]) -> str:
    """The whole LOAD_RESULTS.md text."""
    return "\n".join([
        "# Benchmark: load and soak", "",
        f"Run {started:%Y-%m-%d %H:%M} UTC with `{command}` from the repo root. Simulator in its own "
        f"process, API latency {args.latency:g} s, fault rate {args.fault_rate:g} (500/503/429/drop, "
        "seeded); a private redis-server; posts from bench/gen_posts.py (seed 0); thumbnails off. Other "
        "engineers were running tests on this machine at the same time: see the load averages.", "",
        *facts, "", "## Load", "", *row_lines(rows), "",
        *([f"Celery processes: {', '.join(celery_commands)}.", ""] if celery_commands else []),
        "Checker (`check_site`, every post): viewcount / likeCount / commentCount equal the simulator's "
        "`expected_fields` (hidden likes: the old likeCount stays); body bytes identical; every original "
        "front-matter line other than a stat line present byte-identical and in order; nothing else added "
        "but the stat lines, one `refreshed_at` and the `history:` block. A never-refreshed post is wrong. "
        "Celery wall s: from the enqueue's start until both queues are empty and no post is still queued. "
        "Peak RSS: wait4 ru_maxrss (run, enqueue) or VmHWM (workers, main + the largest pool child).", "",
        *soak_lines(s, args.soak_posts)])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-run", action="store_true", help="leave out the `postrefresh run` row")
    parser.add_argument("--skip-celery", action="store_true", help="leave out the Celery row")
    parser.add_argument("--soak-minutes", type=float, default=30.0, help="0 leaves the soak out")
    parser.add_argument("--run-posts", type=int, default=100_000)
    parser.add_argument("--celery-posts", type=int, default=20_000)
    parser.add_argument("--soak-posts", type=int, default=5_000)
    parser.add_argument("--latency", type=float, default=0.05, help="simulated API latency, seconds")
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (sites and logs)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the rows and the soak, print the results and write bench/LOAD_RESULTS.md."""
    args = parse_args(argv)
    spawn_children_with_fork()
    command = " ".join(["python", "bench/load_bench.py", *(sys.argv[1:] if argv is None else argv)])
    work = Path(tempfile.mkdtemp(prefix="postrefresh-load-bench-", dir="/tmp"))
    (work / "logs").mkdir()
    started = datetime.now(UTC)
    rows: list[Row] = []
    celery_commands: list[str] = []
    result = Soak()

    def report() -> str:
        # Written after every phase, so a failure late in the soak still leaves the rows before it.
        facts = [*machine_facts(work), versions()]
        text = render(rows, celery_commands, result, args, command, started, facts)
        RESULTS.write_text(text + "\n", encoding="utf-8")
        return text

    try:
        with simulator(args.latency, args.fault_rate, work / "logs") as sim, \
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
        text = report()
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
