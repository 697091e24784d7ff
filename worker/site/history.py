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
from worker.times import time_text
from worker.video_id import is_video_id

CSV_FIELDS = ("at", "field", "value")
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
    return int(text) if text is not None and text.isdigit() else None


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
