"""What the report shows, as plain data: the collector fills it, the page renders it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SPARK_POINTS = 60
WINDOWS = (7, 30)


@dataclass(frozen=True)
class VideoSummary:
    """What the page needs of one video; `row` is its JSON array for the table."""

    row: str
    vid_id: str
    title: str
    status: str
    seen_at: float | None
    gains: tuple[int | None, ...]


Unreadable = tuple[str, str]  # (path, reason) of a post the report could not read


@dataclass
class ReportData:
    """Everything the page shows, collected from the posts, the CSVs and the state database."""

    generated_at: float
    rows: list[str] = field(default_factory=list)
    risers: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    unavailable: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    unreadable: int = 0
    unreadable_posts: list[dict[str, str]] = field(default_factory=list)  # the first SHOWN_UNREADABLE
    quota: list[dict[str, Any]] = field(default_factory=list)
