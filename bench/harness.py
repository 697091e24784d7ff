"""What every bench script shares: its main and options, the simulator, the machine and the tables.

    from harness import bench_main, simulator  # bench/ is sys.path[0] when run as a script
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BIN = Path(sys.executable).parent
KEY = "bench-key"

Option = tuple[str, dict[str, Any]]
LATENCY: Option = ("--latency", {"type": float, "default": 0.05, "help": "simulated API latency, seconds"})
KEEP: Option = ("--keep", {"action": "store_true", "help": "keep the temp folder (sites and logs)"})


def skip_100k(rows: str) -> Option:
    """The `--skip-100k` option, leaving out `rows`."""
    return "--skip-100k", {"action": "store_true", "help": f"leave out {rows} (100,000 posts)"}


def size_options(sizes: dict[str, int]) -> list[Option]:
    """A `--posts-…` option per entry of `sizes` (dest: its key), defaulting to the issue's size."""
    return [(f"--{name.replace('_', '-')}", {"type": int, "default": n, "dest": name,
                                             "help": f"posts (default: the issue's {n:,})"})
            for name, n in sizes.items()]


def full_size(args: argparse.Namespace, sizes: dict[str, int]) -> bool:
    """Every row ran at the issue's size: only such a run replaces the results file."""
    return not args.skip_100k and all(getattr(args, name) == n for name, n in sizes.items())


def smoke_note(args: argparse.Namespace, sizes: dict[str, int]) -> list[str]:
    """The warning a smaller run's results carry (nothing for a full-size run)."""
    if full_size(args, sizes):
        return []
    used = " / ".join(f"{getattr(args, name):,}" for name in sizes)
    issue = " / ".join(f"{n:,}" for n in sizes.values())
    skipped = " (100,000-post row skipped)" if args.skip_100k else ""
    return [f"**Smoke run**: {used} posts{skipped}, not the issue's {issue}: the verdicts below do "
            "not measure the targets, and this was not written to the results file.", ""]


def parse_args(doc: str, argv: list[str] | None, *options: Option) -> argparse.Namespace:
    """The command line: the script's docstring's first line and `options` in order."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for flag, settings in options:
        parser.add_argument(flag, **settings)
    return parser.parse_args(argv)


def spawn_children_with_fork() -> None:
    """Make wait4's ru_maxrss of each child its own peak.

    With vfork (CPython's default) a child's exec records THIS process's VmHWM as the child's
    starting maxrss, so a small child would read as this process's peak; fork starts afresh.
    """
    subprocess._USE_VFORK = False  # type: ignore[misc]


@dataclass(frozen=True)
class Started:
    """One bench run: its temp work folder (with `logs/`), its exact command and when it started."""

    work: Path
    command: str
    at: datetime
    load: tuple[float, float, float]  # the load averages when it started: others share the machine


def bench_main(script: str, folder: str, results: Path | None, keep: bool, argv: list[str] | None,
               run: Callable[[Started], str]) -> int:
    """Fork children, make a temp folder, `run` (rows -> Markdown), keep or remove it, print, write `results`.

    `results` is None for a smoke run: the table is printed, the committed results are kept.

    `script` is the file under bench/ (for the recorded command), `folder` the temp folder's prefix.
    """
    spawn_children_with_fork()
    command = " ".join(["python", f"bench/{script}", *(sys.argv[1:] if argv is None else argv)])
    work = Path(tempfile.mkdtemp(prefix=folder, dir="/tmp"))
    (work / "logs").mkdir()
    try:
        text = run(Started(work, command, datetime.now(UTC), os.getloadavg()))
    finally:
        if keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(text)
    if results is not None:
        results.write_text(text + "\n", encoding="utf-8")
    return 0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def simulator(latency: float, logs: Path) -> Iterator[str]:
    """Run `python -m worker.simulator` in its own process; yield its base URL; stop it after."""
    port = free_port()
    argv = [sys.executable, "-m", "worker.simulator", "--port", str(port),
            "--latency", str(latency), "--key", KEY]
    with (logs / "simulator.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(url, proc)
        yield url
    finally:
        stop(proc)


# The simulator in its own process, as simulator() runs it, plus SIGUSR1 to move to the next epoch.
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
def epoch_simulator(latency: float, fault_rate: float, logs: Path) -> Iterator[Simulator]:
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


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a helper process, killing it if it does not go within 5 s."""
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_until_answering(url: str, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Poll `url` until the server sends any HTTP reply (a 404 on an unknown path will do)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the simulator exited with {proc.returncode}; see simulator.log")
        try:
            with urllib.request.urlopen(url + "/ready", timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the simulator did not answer at {url} within {timeout:g}s")


def verdict(name: str, figure: str, ok: bool) -> str:
    """One target line: its name, the figure measured and whether the target was met."""
    return f"- {name}: {figure} — {'met' if ok else '**MISSED**'}"


def machine_facts(started: Started) -> list[str]:
    """nproc, RAM, CPU, Python, OS, the temp filesystem, the git revision and the load at start and end."""
    meminfo = Path("/proc/meminfo").read_text()
    ram_kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))  # type: ignore[union-attr]
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    revision = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                              text=True, cwd=ROOT).stdout.strip()
    model = cpu.group(1) if cpu else "?"
    return [f"- nproc: {os.cpu_count()}; RAM: {ram_kib / 1024**2:.1f} GiB; CPU: {model}",
            f"- Python {platform.python_version()} on {platform.platform()}",
            f"- temp filesystem: {filesystem_of(started.work)}; git: {revision or '?'}",
            f"- load average (1, 5, 15 min) at the start: {loads(started.load)}; at the end: "
            f"{loads(os.getloadavg())} (other work on the machine slows every row)"]


def loads(averages: tuple[float, float, float]) -> str:
    """`0.12 / 0.34 / 0.56`."""
    return " / ".join(f"{a:.2f}" for a in averages)


def filesystem_of(path: Path) -> str:
    """The type of the filesystem holding `path`, from /proc/mounts (longest mount-point prefix)."""
    best, kind = "", "?"
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fstype, *_ = line.split()
        if str(path).startswith(mount) and len(mount) > len(best):
            best, kind = mount, fstype
    return kind


def markdown_table(head: Sequence[str], align: str, rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table's lines; `align` has one letter per column, `l` (left) or `r` (right)."""
    rule = "|" + "".join("---:|" if a == "r" else "---|" for a in align)
    return [row_line(head), rule, *map(row_line, rows)]


def row_line(cells: Sequence[str]) -> str:
    """One Markdown table line."""
    return "| " + " | ".join(cells) + " |"
