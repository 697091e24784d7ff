"""History of a video's values: entries written on each change, CSVs, and the rebuilt series.

An entry holds the values a refresh replaced and `at`, the time they were observed (the
previous `refreshed_at`, or the post's `date` before the first refresh). With the current
values at `refreshed_at`, the entries in the post and in `_data/postrefresh/<vid_id>.csv`
rebuild the whole series of every field.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from worker.frontmatter.editor import HISTORY_KEY, normalise
from worker.site.files import write_atomic
from worker.site.paths import history_file
from worker.times import parse_time, time_text
from worker.video_id import is_video_id

CSV_FIELDS = ("at", "field", "value")
Series = list[tuple[int, int]]  # (epoch seconds, value) observations, oldest first
REFRESHED_AT = "refreshed_at"


def as_text(value: Any) -> str | None:
    """A front-matter value as the text history stores (None stays None)."""
    if isinstance(value, datetime):
        return time_text(value)
    value = normalise(value)
    return value if value is None or isinstance(value, str) else str(value)


def as_number(value: Any) -> int | None:
    """A front-matter or history value as a whole number (`"1234"`, 1234), None if it is not one."""
    text = as_text(value)
    # isascii: "²" is a digit to isdigit, not to int
    return int(text) if text is not None and text.isascii() and text.isdigit() else None


def observed_at(mapping: Mapping[Any, Any]) -> str | None:
    """When the post's current values were observed."""
    return as_text(mapping.get(REFRESHED_AT) or mapping.get("date"))


def entry_for(mapping: Mapping[Any, Any], changes: Mapping[str, str | None]
              ) -> dict[str, str | None] | None:
    """The history entry for `changes`: the replaced values and when they were observed.

    Keys the post did not have yet are left out (their series starts with the new value);
    None when nothing was replaced.
    """
    replaced = {key: as_text(mapping[key]) for key in changes if key in mapping and key != REFRESHED_AT}
    return {"at": observed_at(mapping), **replaced} if replaced else None


def csv_path(site: Path, history_dir: str, vid_id: str) -> Path:
    """Where a video's history CSV lives (in the site's `history_dir`)."""
    if not is_video_id(vid_id):
        raise ValueError(f"not a video id: {vid_id!r}")
    return site / history_file(history_dir, vid_id)


def append_csv(site: Path, history_dir: str, vid_id: str, entries: Iterable[Mapping[str, Any]]) -> int:
    """Append entries to the video's CSV (one row per field), skipping rows already there."""
    path = csv_path(site, history_dir, vid_id)
    existing = path.read_bytes() if path.exists() else b""
    known = {tuple(row) for row in _rows(existing)}
    new_rows = [row for row in _entry_rows(entries) if row not in known]
    if not new_rows:
        return 0
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if not existing:
        writer.writerow(CSV_FIELDS)
    writer.writerows(new_rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, existing + out.getvalue().encode("utf-8"))
    return len(new_rows)


def _entry_rows(entries: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    rows = []
    for entry in entries:
        at = as_text(entry.get("at")) or ""
        for key, value in entry.items():
            if key != "at":
                text = as_text(value)
                rows.append((at, str(key), "" if text is None else text))
    return rows


def _rows(data: bytes) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    return rows[1:] if rows and tuple(rows[0]) == CSV_FIELDS else rows


def series(site: Path, history_dir: str, vid_id: str, mapping: Mapping[Any, Any], fields: Iterable[str]
           ) -> list[tuple[str, str, str | None]]:
    """Every known (time, field, value) point of a video, oldest first, current values last."""
    path = csv_path(site, history_dir, vid_id)
    points: list[tuple[str, str, str | None]] = []
    if path.exists():
        points += [(at, key, value) for at, key, value in _rows(path.read_bytes())]
    points += _entry_rows(mapping.get(HISTORY_KEY) or [])
    now = observed_at(mapping) or ""
    points += [(now, key, as_text(mapping.get(key))) for key in fields if key in mapping]
    unique = list(dict.fromkeys(points))
    return sorted(unique, key=lambda point: point[0])


def number_series(points: Iterable[tuple[str, str, str | None]], key: str) -> Series:
    """The whole-number observations of `key` among `points` (as `series` gives them), oldest first.

    Points whose time or value (as_number) cannot be read are skipped; points of the same
    second keep their order in `points` (runs a second apart are real), repeats are dropped.
    """
    found: Series = []
    for at, field_name, value in points:
        when = parse_time(at) if field_name == key else None
        number = None if when is None else as_number(value)
        if when is not None and number is not None:
            found.append((int(when), number))
    found.sort(key=lambda point: point[0])
    return [point for i, point in enumerate(found) if i == 0 or point != found[i - 1]]


def window_gain(observed: Series, now: float, window: float) -> tuple[int, int] | None:
    """What the value gained over the `window` seconds before `now`, and when its baseline was seen.

    The gain is the latest value minus the value at the window's start: the last observation at
    or before the start, so a video observed about once a window (the old tier: every 7 days)
    still shows the whole window's gain. That observation must be at most one window older than
    the start: the `date` of a post written years ago says nothing of this week, so a first
    refresh is no gain. Without one, the baseline is the first observation inside the window
    (the gain since then); None when nothing was observed in either.
    """
    start = now - window
    before = [point for point in observed if start - window <= point[0] <= start]
    inside = [point for point in observed if point[0] > start]
    baseline = before[-1] if before else inside[0] if inside else None
    if baseline is None:
        return None
    return observed[-1][1] - baseline[1], baseline[0]
