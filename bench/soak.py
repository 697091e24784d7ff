"""The load bench's soak: beat drives the refreshes while Redis and every worker's memory are sampled.

The simulator's epoch moves every 2 minutes; at the end every post is checked (site_check).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# Run from bench/ scripts: bench/ is sys.path[0] and is not an installed package.
from celery_procs import CeleryBench, Worker
from harness import BIN, ROOT, Simulator, markdown_table
from measured import children_of, kib_field
from site_check import SiteCheck, check_site, fresh_copy, generate

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


def load() -> str:
    """The 1-minute load average now."""
    return f"{os.getloadavg()[0]:.2f}"


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


def flat_table(samples: list[dict[str, float]]) -> list[str]:
    """Start / at 5 min / end / max of each sampled figure, and whether it stayed flat."""
    base = next((s for s in samples if s["t"] >= FLAT_AFTER), samples[-1])
    cells = []
    for name in samples[0]:
        if name in ("t", "refreshed", "load"):
            continue
        values = [s[name] for s in samples]
        flat = values[-1] <= 1.2 * base[name]
        cells.append([name, f"{values[0]:,.1f}", f"{base[name]:,.1f}", f"{values[-1]:,.1f}",
                      f"{max(values):,.1f}", "yes" if flat else "**NO**"])
    head = ["figure", "start", f"at {base['t'] / 60:.1f} min", "end", "max", "flat (end ≤ 1.2 x at 5 min)"]
    return markdown_table(head, "lrrrrl", cells)


def samples_table(samples: list[dict[str, float]]) -> list[str]:
    """Every sample, one line each."""
    names = list(samples[0])
    return markdown_table(["t s" if n == "t" else n for n in names], "r" * len(names), [
        [f"{s[n]:,.0f}" if n in ("t", "redis keys", "refreshed") else f"{s[n]:,.1f}" for n in names]
        for s in samples])


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
