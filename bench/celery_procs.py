"""The Celery bench's processes: a private redis-server, `celery -A tasks worker`s and the queues they drain.

Shared by celery_bench.py and load_bench.py (run as scripts: bench/ is sys.path[0]).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import redis
from harness import BIN, KEY, ROOT, free_port, stop
from measured import MIB, Measured, children_of, kib_field, measure

DRAIN_TIMEOUT = 1_800.0


@dataclass(frozen=True)
class ProcMemory:
    """One worker's memory before it stopped: main VmHWM, pool children's VmHWM, PSS now (MiB)."""

    name: str
    main_hwm: float
    children_hwm: list[float]
    pss_total: float
    wait4_maxrss: float = 0.0  # max over the main process and every child it reaped


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
    """The Celery path's environment, queues and counters, over one simulator and the private Redis."""

    def __init__(self, sim_url: str, redis_url: str, work: Path, thumbnails: bool = False) -> None:
        self.redis_url = redis_url
        self.client = redis.Redis.from_url(redis_url)
        self.work = work
        self.logs = work / "logs"
        config = work / "celery.toml"
        config.write_text(f"thumbnails = {str(thumbnails).lower()}\n", encoding="utf-8")
        base = {k: v for k, v in os.environ.items() if not k.startswith(("POSTREFRESH", "YOUTUBE", "CELERY"))}
        self.env = base | {"REDIS_URL": redis_url, "POSTREFRESH_CONFIG": str(config),
                           "YOUTUBE_API_KEY": KEY, "YOUTUBE_API_URL": sim_url + "/youtube/v3",
                           "YOUTUBE_THUMBNAIL_URL": sim_url, "PYTHONPATH": str(ROOT)}

    def enqueue_argv(self, site: Path) -> tuple[list[str], dict[str, str]]:
        """`postrefresh enqueue --all` and its environment for `site`."""
        return [str(BIN / "postrefresh"), "enqueue", "--all"], self.env | {"POSTREFRESH_SITE": str(site)}

    def drained(self) -> bool:
        """Both queues empty, no message reserved by a worker (kombu's `unacked` hash: tasks ack
        late) and no post still marked queued (a write releases its post)."""
        if self.client.llen("fetch") or self.client.llen("write") or self.client.hlen("unacked"):
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

    def run_to_drain(self, site: Path) -> Drain:
        """Start the enqueue; poll until it has exited and every post is written."""
        argv, env = self.enqueue_argv(site)
        os.sync()
        started_ns, started = time.time_ns(), time.perf_counter()
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
        return Drain(wall, enqueue.result(), started_ns)


@dataclass(frozen=True)
class Drain:
    """One enqueue drained by the workers: wall s until drained (polled every 0.2 s), the enqueue
    process, and the wall-clock ns it started at (to time the last write from file stamps)."""

    wall: float
    enqueue: Measured
    started_ns: int


def scan_logs(logs: list[Path]) -> dict[str, int]:
    """From the fetch workers' logs: videos.list calls and ids, Celery retries, failed attempts."""
    text = "\n".join(log.read_text(errors="replace") for log in logs)
    batches = [int(n) for n in re.findall(r"videos\.list for (\d+) ids", text)]
    return {"calls": len(batches), "ids": sum(batches), "smallest": min(batches, default=0),
            "full": sum(1 for n in batches if n == 50), "celery_retries": len(re.findall(r"Retry in", text)),
            "attempt_failures": len(re.findall(r"videos\.list attempt \d+", text))}


def versions() -> str:
    """redis-server and celery versions."""
    server = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    celery = subprocess.run([str(BIN / "celery"), "--version"], capture_output=True, text=True).stdout
    found = next((w for w in server if w.startswith("v=")), "v=?")[2:]
    return f"- redis-server {found}; celery {celery.strip() or '?'}"
