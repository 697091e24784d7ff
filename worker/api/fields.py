"""A videos.list item as flat fields (`statistics.viewCount`, ...), with fields computed from them.

The computed fields cost no extra quota: `contentDetails.durationSeconds` comes from the
ISO 8601 duration (`PT1H2M3S`, `P1DT1S`, `P0D`), and `snippet.bestThumbnailUrl` is the largest
thumbnail the API lists (maxres, then standard, high, medium, default). Like every API field,
they reach a post only when the settings map a post key to them (`[fields]` or `[fill_empty]`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from worker.errors import TransientApiError

log = logging.getLogger(__name__)

DURATION_SECONDS = "contentDetails.durationSeconds"
BEST_THUMBNAIL = "snippet.bestThumbnailUrl"
THUMBNAIL_ORDER = ("maxres", "standard", "high", "medium", "default")
_ISO_DURATION = re.compile(
    r"P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?=\d)(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?")
_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
MAX_FLATTEN_DEPTH = 4
PARTS = ("snippet", "contentDetails", "statistics")
# What a computed field is computed from; statistics.viewCount is always asked (the run's views).
SOURCES = {DURATION_SECONDS: "contentDetails.duration", BEST_THUMBNAIL: "snippet.thumbnails"}
ALWAYS = ("statistics.viewCount",)
# Counts videos.list leaves out of a video it returns: likes its owner hid, comments turned off.
HIDEABLE = ("statistics.likeCount", "statistics.commentCount")


def request_mask(api_paths: Iterable[str]) -> str:
    """The `fields=` mask that asks videos.list for just these flat paths (and `id`).

    `items(id,statistics/viewCount,snippet/title)`: paths outside the API's parts (`ryd.*`)
    are not asked for; a computed field asks for what it is computed from.
    """
    wanted = dict.fromkeys(SOURCES.get(p, p) for p in [*ALWAYS, *api_paths])
    asked = [p.replace(".", "/") for p in wanted if p.split(".", 1)[0] in PARTS and "." in p]
    return "items(" + ",".join(["id", *asked]) + ")"


def flat_fields(item: Mapping[str, Any], vid_id: str, *, strict: bool) -> dict[str, str]:
    """One videos.list item as {"statistics.viewCount": "12", ...}, the computed fields added.

    A non-numeric statistic raises TransientApiError when `strict`, else it is dropped.
    """
    fields: dict[str, str] = {}
    for part in PARTS:
        if isinstance(item.get(part), Mapping):
            fields.update(_flatten(item[part], part))
    for path in [p for p in fields if p.startswith("statistics.")]:
        value = fields[path]
        if not (value.isascii() and value.isdigit()):
            if strict:
                raise TransientApiError(f"videos.list answered a non-numeric {path} for {vid_id}")
            log.warning("%s: %s is not a number (%r); dropped", vid_id, path, value[:20])
            del fields[path]
    fields.update(derived_fields(fields))  # computed fields, at no extra quota
    return fields


def _flatten(value: Mapping[str, Any], prefix: str, depth: int = 0) -> Iterator[tuple[str, str]]:
    for key, inner in value.items():
        path = f"{prefix}.{key}"
        if isinstance(inner, str):
            yield path, inner
        elif isinstance(inner, Mapping) and depth < MAX_FLATTEN_DEPTH:
            yield from _flatten(inner, path, depth + 1)


def duration_seconds(text: str) -> int | None:
    """Seconds in an ISO 8601 duration as YouTube writes it; None if it is not one."""
    match = _ISO_DURATION.fullmatch(text.strip())
    if match is None or text.strip() in ("P", "PT"):
        return None
    return sum(int(value) * _SECONDS[unit] for unit, value in match.groupdict().items() if value)


def best_thumbnail_url(fields: Mapping[str, str]) -> str | None:
    """The URL of the largest thumbnail among the flat `snippet.thumbnails.*.url` fields."""
    for size in THUMBNAIL_ORDER:
        url = fields.get(f"snippet.thumbnails.{size}.url")
        if url:
            return url
    return None


def derived_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """The computed fields that can be derived from a video's flat fields."""
    derived: dict[str, str] = {}
    duration = fields.get("contentDetails.duration")
    seconds = duration_seconds(duration) if duration is not None else None
    if seconds is not None:
        derived[DURATION_SECONDS] = str(seconds)
    best = best_thumbnail_url(fields)
    if best is not None:
        derived[BEST_THUMBNAIL] = best
    return derived
