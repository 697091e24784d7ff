"""A measured child process: its wall time and the peak RSS of the largest process of its tree.

    from measured import measure  # bench/ is sys.path[0] when run as a script
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1024


@dataclass(frozen=True)
class Measured:
    """One finished child process: wall seconds, the peak RSS of the largest process of its tree,
    exit code, JSON summary, how many processes its tree had (itself included), and the peak of
    its tree's RSS summed (sampled)."""

    wall: float
    rss_mb: float
    exit_code: int
    summary: dict[str, Any]
    processes: int = 1
    tree_rss_mb: float = 0.0


def measure(argv: list[str], env: dict[str, str], logs: Path, name: str) -> Measured:
    """Run `argv` to the end with output in `logs/`; its wall time, largest peak RSS and summary.

    The peak is the largest of wait4's ru_maxrss (the child and every descendant it reaped: Linux
    keeps the maximum, not the sum) and the VmHWM of each descendant sampled while it runs (for
    one that outlives its parent's wait). harness.bench_main has made children fork, not vfork,
    so the child's ru_maxrss is its own.
    """
    os.sync()  # flush the site copy's dirty pages now, so they are not charged to this run's fsyncs
    out = logs / f"{name}.out"
    with out.open("wb") as stdout, (logs / f"{name}.err").open("wb") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env)
        tree = TreePeak(proc.pid)
        try:
            # wait4 on this pid returns the rusage of exactly this child (and anything it reaped).
            # getrusage(RUSAGE_CHILDREN) would instead give the maximum over every child reaped so
            # far (the simulator, gen_posts, earlier rows), so deltas of it are meaningless.
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            tree.stop()
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    try:
        summary = json.loads(out.read_text(encoding="utf-8"))
    except ValueError:
        summary = {}
    rss = max(usage.ru_maxrss / MIB, tree.peak_mb)  # Linux: ru_maxrss in KiB
    return Measured(wall, rss, proc.returncode, summary, 1 + len(tree.seen), tree.tree_mb)


class TreePeak:
    """The largest VmHWM among a running process's descendants, and the largest sum of the VmRSS
    of it and its descendants (`tree_mb`), sampled every `interval` s."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval = pid, interval
        self.peak_mb = 0.0
        self.tree_mb = 0.0
        self.seen: set[int] = set()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="tree-peak", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(self.interval):
            kids = descendants(self.pid)
            for pid in kids:
                with contextlib.suppress(OSError):  # it may exit between the listing and the read
                    self.peak_mb = max(self.peak_mb, kib_field(pid, "VmHWM"))
                    self.seen.add(pid)
            self.tree_mb = max(self.tree_mb, sum(_rss_mb(pid) for pid in [self.pid, *kids]))

    def stop(self) -> None:
        """Stop sampling."""
        self._done.set()
        self._thread.join()


def children_of(pid: int) -> list[int]:
    """The direct children of `pid`, from /proc/<pid>/task/*/children."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in children.read_text().split()]
    return found


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid`."""
    found, todo = [], [pid]
    while todo:
        kids = children_of(todo.pop())
        found += kids
        todo += kids
    return found


def _rss_mb(pid: int) -> float:
    try:
        return kib_field(pid, "VmRSS")
    except OSError:  # gone since the listing
        return 0.0


def kib_field(pid: int, name: str, table: str = "status") -> float:
    """A `Name:  N kB` field of /proc/<pid>/status (or smaps_rollup), in MiB."""
    text = Path(f"/proc/{pid}/{table}").read_text()
    match = re.search(rf"^{name}:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) / MIB if match else 0.0
