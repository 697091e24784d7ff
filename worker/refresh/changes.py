"""What to change in one post, given its video's API fields: pure, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.api.fields import HIDEABLE
from worker.frontmatter.editor import normalise
from worker.settings import Settings
from worker.site.history import REFRESHED_AT, as_number
from worker.times import parse_time

UNAVAILABLE = "unavailable"
STATUS = "status"


def plan_changes(mapping: Mapping[Any, Any], video: Mapping[str, str] | None, absences: int,
                 settings: Settings, thumbnail: str | None = None) -> dict[str, str | None]:
    """The values to change in a post (None deletes a key), given its video's API fields.

    `video` is None when the API did not return the video; `absences` counts the checks in a
    row (this one included) that it was missing. A count the API stopped giving (HIDEABLE)
    becomes unknown, not frozen: see `_unknown`.
    """
    if video is None:
        gone = absences >= settings.site.absent_runs and mapping.get(STATUS) != UNAVAILABLE
        return {STATUS: UNAVAILABLE} if gone else {}
    changes: dict[str, str | None] = {}
    for key, api_path in settings.refreshed_fields.items():
        new = video.get(api_path)
        if new is not None and normalise(mapping.get(key)) != new:
            changes[key] = new
        elif new is None and api_path in HIDEABLE and key in mapping:
            changes.update(_unknown(key, mapping[key]))
    for key, api_path in settings.site.fill_empty.items():
        new = video.get(api_path)
        if new and key in mapping and mapping[key] in ("", None):
            changes[key] = new
    if thumbnail is not None and mapping.get("image") != thumbnail:
        changes["image"] = thumbnail
    if STATUS in mapping and mapping[STATUS] == UNAVAILABLE:
        changes[STATUS] = None
    return changes


def _unknown(key: str, value: Any) -> dict[str, str | None]:
    """How a post says it no longer knows a count, in the value's own type.

    A string count becomes `""` (the form real posts use, `dislikeCount: ""`); a bare number
    loses its key (absent, never 0); a count already unknown stays as it is. The old number
    goes to the history like any replaced value.
    """
    if isinstance(value, str) and value != "":
        return {key: ""}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {key: None}
    return {}


def held_back(mapping: Mapping[Any, Any], changes: Mapping[str, str | None], settings: Settings,
              now: float) -> bool:
    """True when `changes` only move counts by less than `min_change`: the post is left as it is.

    The move is measured against the value in the post, so slow drift adds up and is written
    once it passes. Always written: a post whose last write (`refreshed_at`) is `max_unwritten`
    old or more, or that was never refreshed; a change to anything but a refreshed count (a
    status, the image); a count filled, hidden or not a number.
    """
    threshold = settings.site.min_change
    if threshold is None or not changes:
        return False
    written = parse_time(mapping.get(REFRESHED_AT))
    if written is None or now - written >= settings.site.max_unwritten:
        return False
    counts = settings.refreshed_fields
    for key, new in changes.items():
        old_count, new_count = as_number(mapping.get(key)), as_number(new)
        if key not in counts or old_count is None or new_count is None:
            return False
        if threshold.reached(old_count, new_count):
            return False
    return True

