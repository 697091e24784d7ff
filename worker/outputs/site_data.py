"""summary.json (in `data_dir`): the most viewed and trending videos and milestones, for templates.

It is built from each post's facts (refresh/facts.py), kept in the state DB by the file's
identity: what a run read or wrote is not read again, and a post is parsed only when it
changed. The facts are streamed and only the top-N of each ranking is kept in a heap, so
memory does not grow with the site. The file is written atomically, and only when
something other than `generated_at` changed.
"""

from __future__ import annotations

import heapq
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from worker.outputs.milestones import latest_milestone
from worker.refresh.facts import site_facts, views_key
from worker.settings import Settings
from worker.site import history
from worker.site.files import write_atomic
from worker.site.paths import display, summary_file
from worker.site.state import SiteState
from worker.times import utc_stamp

log = logging.getLogger(__name__)

TRENDING_WINDOW = timedelta(days=7)
Ranked = tuple[int, str, dict[str, Any]]  # (score, path as tie-break, entry)


@dataclass
class _Rankings:
    """The running state of one pass over the site: two bounded heaps and two counters."""

    top: int
    videos: int = 0
    unavailable: int = 0
    most_viewed: list[Ranked] = field(default_factory=list)
    trending: list[Ranked] = field(default_factory=list)
    milestones: list[Ranked] = field(default_factory=list)

    def offer(self, heap: list[Ranked], score: int, path: str, entry: dict[str, Any]) -> None:
        item = (score, path, entry)
        if len(heap) < self.top:
            heapq.heappush(heap, item)
        elif item[:2] > heap[0][:2]:
            heapq.heapreplace(heap, item)


def build_summary(site: Path, settings: Settings, now: datetime, state: SiteState | None = None
                  ) -> dict[str, Any]:
    """The summary of the site's video posts as of `now` (a JSON-ready mapping).

    `state` is the site's state DB when the caller has it open.
    """
    if state is not None:
        return _summary(site, settings, now, site_facts(site, settings, state))
    with SiteState(site) as opened:
        return _summary(site, settings, now, site_facts(site, settings, opened))


def _summary(site: Path, settings: Settings, now: datetime,
             posts: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    key = views_key(settings)
    milestones_since = now.timestamp() - settings.site.milestone_days
    rankings = _Rankings(top=settings.site.summary_top)
    # a bad post is reported by the run; it has no place in the rankings
    for path, facts in posts:
        rankings.videos += 1
        if facts["unavailable"]:
            rankings.unavailable += 1
            continue  # a template should not feature a video nobody can watch
        views = facts["views"]
        if views is None:
            continue
        entry = {"vid_id": facts["vid_id"], "title": facts["title"], "path": display(path), "views": views,
                 "refreshed_at": facts["refreshed_at"]}
        rankings.offer(rankings.most_viewed, views, path, entry)
        points = _points(site, settings.site.history_dir, facts, key)
        gain = history.window_gain(points, now.timestamp(), TRENDING_WINDOW.total_seconds())
        if gain is not None and gain[0] > 0:
            rankings.offer(rankings.trending, gain[0], path,
                           {**entry, "gain": gain[0], "since": utc_stamp(gain[1])})
        passed = latest_milestone(points, milestones_since, settings.site.milestone_days)
        if passed is not None:
            rankings.offer(rankings.milestones, passed[0], path,
                           {**entry, "milestone": passed[0], "passed_at": utc_stamp(passed[1])})
    return {
        "generated_at": utc_stamp(now),
        "counts": {"videos": rankings.videos, "unavailable": rankings.unavailable},
        "most_viewed": _ranked(rankings.most_viewed),
        "trending": _ranked(rankings.trending),
        "milestones": _ranked(rankings.milestones),
    }


def write_summary(site: Path, settings: Settings, now: datetime | None = None,
                  state: SiteState | None = None) -> dict[str, Any] | None:
    """Write the summary file if its content (generated_at aside) changed; the summary when written."""
    summary = build_summary(site, settings, now or datetime.now(UTC), state)
    rel = summary_file(settings.site.data_dir)
    path = site / rel
    if _same_content(path, summary):
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    log.info("wrote %s: %d videos, %d unavailable", rel, summary["counts"]["videos"],
             summary["counts"]["unavailable"])
    return summary


def _points(site: Path, history_dir: str, facts: dict[str, Any], key: str) -> history.Series:
    """Every observation of the video's views, oldest first: its CSV's, then the post's own."""
    try:
        # With no front matter, the series is the CSV's; the post's own points are in its facts.
        kept = history.series(site, history_dir, facts["vid_id"], {}, [key])
    except (OSError, ValueError, UnicodeDecodeError):
        return []  # an unreadable CSV leaves this video out of trending, not the whole summary
    return history.number_series([*kept, *((at, key, value) for at, value in facts["points"])], key)


def _ranked(heap: list[Ranked]) -> list[dict[str, Any]]:
    return [entry for _, _, entry in sorted(heap, key=lambda item: (-item[0], item[1]))]


def _same_content(path: Path, summary: Mapping[str, Any]) -> bool:
    try:
        old = json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return False
    if not isinstance(old, dict):
        return False
    return {k: v for k, v in old.items() if k != "generated_at"} == {
        k: v for k, v in summary.items() if k != "generated_at"}
