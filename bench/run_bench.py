"""Run the core benchmark (postrefresh vs a naive refresher and the I/O floor) and print a Markdown table.

The simulator runs in its own process, so the measured process never shares its GIL; every
measured command is a separate child whose wall time and own peak RSS are taken. The table is
also written to bench/RESULTS.md with the date, the machine and the exact command.

    python bench/run_bench.py [--skip-100k] [--latency 0.05] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from worker.simulator.truth import expected_fields

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "RESULTS.md"
KEY = "bench-key"
FRONT_MATTER_END = re.compile(rb"\r?\n---[ \t]*\r?\n")
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Measured:
    """One finished child process: wall seconds, its own peak RSS, exit code and JSON summary."""

    wall: float
    rss_mb: float
    exit_code: int
    summary: dict[str, Any]


@dataclass(frozen=True)
class Check:
    """The correctness check after row 3: posts checked, posts wrong, and the first problems."""

    checked: int
    wrong: int
    problems: list[str]


@dataclass
class Row:
    """One line of the results table."""

    number: int
    what: str
    posts: int
    run: Measured
    calls: int | None
    units_per_post: float | None
    note: str = ""


def measure(argv: list[str], env: dict[str, str], logs: Path, name: str) -> Measured:
    """Run `argv` to the end with output in `logs/`; return its wall time, peak RSS and summary."""
    os.sync()  # flush the site copy's dirty pages now, so they are not charged to this run's fsyncs
    out = logs / f"{name}.out"
    with out.open("wb") as stdout, (logs / f"{name}.err").open("wb") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env)
        try:
            # wait4 on this pid returns the rusage of exactly this child (and anything it reaped),
            # so ru_maxrss is its own high-water mark. getrusage(RUSAGE_CHILDREN) would instead
            # give the maximum over every child reaped so far (the simulator, gen_posts, earlier
            # rows), which is why deltas of it are meaningless across several children.
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    try:
        summary = json.loads(out.read_text(encoding="utf-8"))
    except ValueError:
        summary = {}
    return Measured(wall, usage.ru_maxrss / 1024, proc.returncode, summary)  # Linux: KiB -> MiB


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


def generate(site: Path, count: int) -> Path:
    """Write a `count`-post site with bench/gen_posts.py (seed 0, all ids distinct)."""
    subprocess.run([sys.executable, str(BENCH / "gen_posts.py"), str(site), "--count", str(count)],
                   check=True, stdout=subprocess.DEVNULL)
    return site


def fresh_copy(pristine: Path, dest: Path) -> Path:
    """A byte-identical copy of a pristine site, so each measured run starts from the same posts."""
    shutil.copytree(pristine, dest)
    return dest


def postrefresh_argv(site: Path, thumbnails: bool) -> list[str]:
    """The `postrefresh run --json` command line, using the venv's console script."""
    script = Path(sys.executable).with_name("postrefresh")
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

    def postrefresh(self, number: int, what: str, site: Path, thumbnails: bool = False) -> Row:
        """Measure one `postrefresh run`."""
        run = measure(postrefresh_argv(site, thumbnails), self.env, self.logs, f"row{number}")
        s = run.summary
        note = f"refreshed {s.get('refreshed')}, unchanged {s.get('unchanged')}"
        if thumbnails:
            note += f", thumbnails {s.get('thumbnails_fetched')} (failed {s.get('thumbnail_failures')})"
        if run.exit_code:
            note += f", EXIT {run.exit_code}"
        posts = int(s.get("seen", 0))
        return Row(number, what, posts, run, s.get("api_calls"), s.get("units_per_post"), note)

    def naive(self, number: int, site: Path) -> Row:
        """Measure bench/naive.py: one videos.list call per post, in turn."""
        argv = [sys.executable, str(BENCH / "naive.py"), "--site", str(site),
                "--api-url", self.url + "/youtube/v3", "--key", KEY]
        run = measure(argv, self.env, self.logs, f"row{number}")
        posts, calls = int(run.summary.get("posts", 0)), int(run.summary.get("calls", 0))
        note = f"EXIT {run.exit_code}" if run.exit_code else "frontmatter.dumps rewrite"
        units = calls / posts if posts else None  # videos.list costs 1 unit per call
        return Row(number, "naive.py (1 call/post)", posts, run, calls, units, note)

    def io_floor(self, number: int, site: Path) -> Row:
        """Measure bench/io_floor.py: read + fsynced rewrite of every post, nothing else."""
        run = measure([sys.executable, str(BENCH / "io_floor.py"), "--site", str(site)],
                      self.env, self.logs, f"row{number}")
        note = f"EXIT {run.exit_code}" if run.exit_code else "read + temp/fsync/rename, no parse"
        return Row(number, "io_floor.py", int(run.summary.get("posts", 0)), run, None, None, note)


def split_post(data: bytes) -> tuple[bytes, bytes]:
    """(front matter YAML, body bytes) of a post that opens with a `---` line."""
    match = FRONT_MATTER_END.search(data, 3)
    if not data.startswith(b"---") or match is None:
        raise ValueError("no front matter block")
    return data[data.index(b"\n") + 1 : match.start()], data[match.end() :]


def check_post(path: Path, original: Path) -> list[str]:
    """Problems with one refreshed post: viewcount differs from the simulator, or body bytes changed."""
    head, body = split_post(path.read_bytes())
    fields = yaml.load(head, Loader=YAML_LOADER)
    want = expected_fields(fields["vid_id"], 0)["statistics.viewCount"]
    problems = []
    if str(fields.get("viewcount")) != want:
        problems.append(f"{path.name}: viewcount {fields.get('viewcount')!r}, simulator says {want}")
    if body != split_post(original.read_bytes())[1]:
        problems.append(f"{path.name}: body bytes changed")
    return problems


def verify_site(site: Path, pristine: Path) -> Check:
    """Check every post of `site` (not just a sample) against the simulator and its pristine copy."""
    problems: list[str] = []
    wrong = 0
    names = sorted(p.name for p in (pristine / "_posts").iterdir())
    for name in names:
        found = check_post(site / "_posts" / name, pristine / "_posts" / name)
        wrong += bool(found)
        problems += found
    return Check(len(names), wrong, problems[:20])


def snapshot(site: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every post: an atomic rewrite changes the inode, an in-place one the mtime."""
    marks = {}
    for path in (site / "_posts").iterdir():
        st = path.stat()
        marks[path.name] = (st.st_ino, st.st_mtime_ns)
    return marks


def bench_1k(bench: Bench, work: Path) -> list[Row]:
    """Rows 1-2: postrefresh vs the naive refresher on the same 1,000 posts (fresh copies)."""
    pristine = generate(work / "p1k", 1_000)
    row1 = bench.postrefresh(1, "postrefresh run --no-thumbnails", fresh_copy(pristine, work / "r1"))
    row2 = bench.naive(2, fresh_copy(pristine, work / "r2"))
    return [row1, row2]


def bench_10k(bench: Bench, work: Path) -> tuple[list[Row], Check]:
    """Rows 3, 7, 4, 5 on 10,000 posts, with the correctness check after row 3."""
    pristine = generate(work / "p10k", 10_000)
    site = fresh_copy(pristine, work / "r3")
    row3 = bench.postrefresh(3, "postrefresh run --no-thumbnails", site)
    check = verify_site(site, pristine)
    before = snapshot(site)
    row7 = bench.postrefresh(7, "postrefresh run --no-thumbnails, again (no change)", site)
    after = snapshot(site)
    rewritten = sum(1 for name, mark in after.items() if before.get(name) != mark)
    row7.note += f", post files rewritten {rewritten}"
    row4 = bench.postrefresh(4, "postrefresh run (with thumbnails)", fresh_copy(pristine, work / "r4"),
                             thumbnails=True)
    row5 = bench.io_floor(5, fresh_copy(pristine, work / "r5"))
    row3.note += f"; {check.checked - check.wrong:,}/{check.checked:,} posts correct"
    return [row3, row4, row5, row7], check


def bench_100k(bench: Bench, work: Path) -> Row:
    """Row 6: postrefresh on 100,000 posts."""
    site = generate(work / "r6", 100_000)
    return bench.postrefresh(6, "postrefresh run --no-thumbnails", site)


def fmt(value: float | int | None, digits: int = 2) -> str:
    """A table cell: '-' for nothing, fixed decimals for floats."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def markdown_table(rows: list[Row]) -> str:
    """The results as a Markdown table, in row-number order."""
    lines = ["| # | run | posts | wall s | in-run s | API calls | units/post | peak RSS MB | notes |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in sorted(rows, key=lambda row: row.number):
        inner = r.run.summary.get("seconds")
        lines.append(f"| {r.number} | {r.what} | {r.posts:,} | {r.run.wall:.2f} | {fmt(inner)} | "
                     f"{fmt(r.calls)} | {fmt(r.units_per_post, 4)} | {r.run.rss_mb:.1f} | {r.note} |")
    return "\n".join(lines)


def verdicts(rows: list[Row], check: Check) -> list[str]:
    """Each target with its figure and whether it was met."""
    by = {r.number: r for r in rows}

    def line(name: str, figure: str, ok: bool) -> str:
        return f"- {name}: {figure} — {'met' if ok else '**MISSED**'}"

    speedup = by[2].run.wall / by[1].run.wall
    floor = by[3].run.wall / by[5].run.wall
    out = [line("speed-up row 2 / row 1 (target ≥ 50x)", f"{speedup:.1f}x", speedup >= 50),
           line("row 3 / row 5, postrefresh vs I/O floor (target ≤ 3x)", f"{floor:.2f}x", floor <= 3)]
    if 6 in by:
        rss, units = by[6].run.rss_mb, by[6].units_per_post or 0.0
        out += [line("row 6 peak RSS (target < 150 MB)", f"{rss:.1f} MB", rss < 150),
                line("row 6 units/post (target ≤ 0.02)", f"{units:.4f}", units <= 0.02)]
    out.append(line("correctness after row 3 (viewcount = simulator, body bytes unchanged)",
                    f"{check.checked - check.wrong:,}/{check.checked:,} posts", check.wrong == 0))
    out += [f"  - {problem}" for problem in check.problems]
    return out


def machine_facts(work: Path) -> list[str]:
    """nproc, RAM, CPU, Python, OS, the temp filesystem and the git revision."""
    meminfo = Path("/proc/meminfo").read_text()
    ram_kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))  # type: ignore[union-attr]
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    revision = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                              text=True, cwd=BENCH.parent).stdout.strip()
    model = cpu.group(1) if cpu else "?"
    return [f"- nproc: {os.cpu_count()}; RAM: {ram_kib / 1024**2:.1f} GiB; CPU: {model}",
            f"- Python {platform.python_version()} on {platform.platform()}",
            f"- temp filesystem: {filesystem_of(work)}; git: {revision or '?'}"]


def filesystem_of(path: Path) -> str:
    """The type of the filesystem holding `path`, from /proc/mounts (longest mount-point prefix)."""
    best, kind = "", "?"
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fstype, *_ = line.split()
        if str(path).startswith(mount) and len(mount) > len(best):
            best, kind = mount, fstype
    return kind


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-100k", action="store_true", help="leave out row 6 (100,000 posts)")
    parser.add_argument("--latency", type=float, default=0.05, help="simulated API latency, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (sites and logs)")
    return parser.parse_args(argv)


def spawn_children_with_fork() -> None:
    """Make wait4's ru_maxrss of each child its own peak.

    With vfork (CPython's default) a child's exec records THIS process's VmHWM as the child's
    starting maxrss, so a small child would read as this process's peak; fork starts afresh.
    """
    subprocess._USE_VFORK = False  # type: ignore[misc]


def main(argv: list[str] | None = None) -> int:
    """Run every row, print the table and write bench/RESULTS.md."""
    args = parse_args(argv)
    spawn_children_with_fork()
    command = " ".join(["python", "bench/run_bench.py", *(sys.argv[1:] if argv is None else argv)])
    work = Path(tempfile.mkdtemp(prefix="postrefresh-bench-", dir="/tmp"))
    logs = work / "logs"
    logs.mkdir()
    started = datetime.now(UTC)
    try:
        with simulator(args.latency, logs) as url:
            bench = Bench(url, logs)
            rows = bench_1k(bench, work)
            ten, check = bench_10k(bench, work)
            rows += ten
            if not args.skip_100k:
                rows.append(bench_100k(bench, work))
        report = render(rows, check, command, started, args.latency, machine_facts(work))
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(report)
    RESULTS.write_text(report + "\n", encoding="utf-8")
    return 0


def render(rows: list[Row], check: Check, command: str, started: datetime,
           latency: float, facts: list[str]) -> str:
    """The whole RESULTS.md text."""
    return "\n".join([
        "# Benchmark: the core", "",
        f"Run {started:%Y-%m-%d %H:%M} UTC with `{command}` from the repo root; simulator in its own "
        f"process, API latency {latency:g} s, posts from bench/gen_posts.py (seed 0).", "",
        *facts, "",
        markdown_table(rows), "",
        "wall s: the measured process from spawn to exit (start-up and imports included); in-run s: "
        "the tool's own clock. Peak RSS: that process's ru_maxrss from wait4, in MiB. Ratios use wall s. "
        "Row 7 runs on row 3's site right after it.", "",
        "## Targets", "", *verdicts(rows, check),
    ])


if __name__ == "__main__":
    sys.exit(main())
