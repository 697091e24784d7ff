"""The benches' sites: generated, copied fresh, and checked against the simulator's truth and the original.

Right: the stats equal `expected_fields`, body bytes unchanged, every original front-matter line
kept byte-identical and in order, nothing added but the stat lines, `refreshed_at` and `history:`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Run from bench/ scripts: bench/ is sys.path[0] and is not an installed package.
from harness import BENCH
from measured import kib_field

from worker.settings import SiteSettings, ThumbnailSettings
from worker.simulator.truth import expected_fields
from worker.site.paths import thumbnail_file, thumbnail_folder

STAT_FIELDS = {b"viewcount": "statistics.viewCount", b"likeCount": "statistics.likeCount",
               b"commentCount": "statistics.commentCount"}
KEY_LINE = re.compile(rb"([A-Za-z_][\w-]*):[ \t]*(.*?)\r?\n?\Z", re.S)
FRONT_MATTER_END = re.compile(rb"\r?\n---[ \t]*\r?\n")
THUMBNAIL_DIR = ThumbnailSettings().dir  # the benches keep the defaults
HISTORY_DIR = SiteSettings().history_dir
EXAMPLES = 5


def generate(site: Path, count: int) -> Path:
    """Write a `count`-post site with bench/gen_posts.py (seed 0, all ids distinct)."""
    subprocess.run([sys.executable, str(BENCH / "gen_posts.py"), str(site), "--count", str(count)],
                   check=True, stdout=subprocess.DEVNULL)
    return site


def fresh_copy(pristine: Path, dest: Path) -> Path:
    """A byte-identical copy of a pristine site, so each measured run starts from the same posts."""
    shutil.copytree(pristine, dest)
    return dest


def split_post(data: bytes) -> tuple[bytes, bytes]:
    """(front matter YAML, body bytes) of a post that opens with a `---` line."""
    match = FRONT_MATTER_END.search(data, 3)
    if not data.startswith(b"---") or match is None:
        raise ValueError("no front matter block")
    return data[data.index(b"\n") + 1 : match.start()], data[match.end() :]


def snapshot(site: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every post: an atomic rewrite changes the inode, an in-place one the mtime."""
    marks = {}
    with os.scandir(site / "_posts") as entries:
        for entry in entries:
            st = entry.stat()
            marks[entry.name] = (st.st_ino, st.st_mtime_ns)
    return marks


def missing_thumbnails(site: Path) -> int:
    """How many posts of `site` have no stored thumbnail file."""
    missing = 0
    with os.scandir(site / "_posts") as entries:
        for entry in entries:
            head = split_post(Path(entry.path).read_bytes())[0]
            vid_id = dict(map(key_value, head_lines(head))).get(b"vid_id", b"").decode()
            missing += not (site / thumbnail_file(THUMBNAIL_DIR, vid_id)).is_file()
    return missing


def last_write_ns(site: Path) -> int:
    """The newest mtime of a post, thumbnail or history file or of their folders (renames stamp them)."""
    newest = 0
    for folder in (site / "_posts", site / thumbnail_folder(THUMBNAIL_DIR), site / HISTORY_DIR):
        if folder.is_dir():
            newest = max(newest, folder.stat().st_mtime_ns)
            with os.scandir(folder) as entries:
                newest = max([newest, *(entry.stat().st_mtime_ns for entry in entries)])
    return newest


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
    """What differs between the stat lines and the truth (a hidden count: `""`, or no line if none was)."""
    for key, name in STAT_FIELDS.items():
        want = truth[name].encode() if name in truth else b"" if key in old else None
        if stats.get(key) != want:
            return f"{key.decode()} {stats.get(key)!r}, want {want!r}"
    return None
