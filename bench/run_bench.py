"""Run the core benchmark (postrefresh vs a naive refresher and the I/O floor) and print a Markdown table.

The simulator runs in its own process, so the measured process never shares its GIL; every
measured command is a separate child whose wall time and own peak RSS are taken. The table is
also written to bench/RESULTS.md with the date, the machine and the exact command.

    python bench/run_bench.py [--skip-100k] [--latency 0.05] [--keep]
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

# Run as `python bench/run_bench.py`: bench/ is sys.path[0] and is not an installed package.
from harness import (
    BENCH,
    KEEP,
    KEY,
    LATENCY,
    Measured,
    Started,
    bench_main,
    machine_facts,
    markdown_table,
    measure,
    parse_args,
    simulator,
    skip_100k,
    verdict,
)

from worker.simulator.truth import expected_fields

RESULTS = BENCH / "RESULTS.md"
FRONT_MATTER_END = re.compile(rb"\r?\n---[ \t]*\r?\n")
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


def rows_table(rows: list[Row]) -> list[str]:
    """The results as a Markdown table, in row-number order."""
    head = ["#", "run", "posts", "wall s", "in-run s", "API calls", "units/post", "peak RSS MB", "notes"]
    return markdown_table(head, "llrrrrrrl", [
        [str(r.number), r.what, f"{r.posts:,}", f"{r.run.wall:.2f}", fmt(r.run.summary.get("seconds")),
         fmt(r.calls), fmt(r.units_per_post, 4), f"{r.run.rss_mb:.1f}", r.note]
        for r in sorted(rows, key=lambda row: row.number)])


def verdicts(rows: list[Row], check: Check) -> list[str]:
    """Each target with its figure and whether it was met."""
    by = {r.number: r for r in rows}
    speedup = by[2].run.wall / by[1].run.wall
    floor = by[3].run.wall / by[5].run.wall
    out = [verdict("speed-up row 2 / row 1 (target ≥ 50x)", f"{speedup:.1f}x", speedup >= 50),
           verdict("row 3 / row 5, postrefresh vs I/O floor (target ≤ 3x)", f"{floor:.2f}x", floor <= 3)]
    if 6 in by:
        rss, units = by[6].run.rss_mb, by[6].units_per_post or 0.0
        out += [verdict("row 6 peak RSS (target < 150 MB)", f"{rss:.1f} MB", rss < 150),
                verdict("row 6 units/post (target ≤ 0.02)", f"{units:.4f}", units <= 0.02)]
    out.append(verdict("correctness after row 3 (viewcount = simulator, body bytes unchanged)",
                       f"{check.checked - check.wrong:,}/{check.checked:,} posts", check.wrong == 0))
    out += [f"  - {problem}" for problem in check.problems]
    return out


def render(rows: list[Row], check: Check, command: str, started: datetime,
           latency: float, facts: list[str]) -> str:
    """The whole RESULTS.md text."""
    return "\n".join([
        "# Benchmark: the core", "",
        f"Run {started:%Y-%m-%d %H:%M} UTC with `{command}` from the repo root; simulator in its own "
        f"process, API latency {latency:g} s, posts from bench/gen_posts.py (seed 0).", "",
        *facts, "",
        *rows_table(rows), "",
        "wall s: the measured process from spawn to exit (start-up and imports included); in-run s: "
        "the tool's own clock. Peak RSS: that process's ru_maxrss from wait4, in MiB. Ratios use wall s. "
        "Row 7 runs on row 3's site right after it.", "",
        "## Targets", "", *verdicts(rows, check),
    ])


def main(argv: list[str] | None = None) -> int:
    """Run every row, print the table and write bench/RESULTS.md."""
    args = parse_args(__doc__, argv, skip_100k("row 6"), LATENCY, KEEP)

    def run(started: Started) -> str:
        work, logs = started.work, started.work / "logs"
        with simulator(args.latency, logs) as url:
            bench = Bench(url, logs)
            rows = bench_1k(bench, work)
            ten, check = bench_10k(bench, work)
            rows += ten
            if not args.skip_100k:
                rows.append(bench_100k(bench, work))
        return render(rows, check, started.command, started.at, args.latency, machine_facts(work))

    return bench_main("run_bench.py", "postrefresh-bench-", RESULTS, args.keep, argv, run)


if __name__ == "__main__":
    sys.exit(main())
