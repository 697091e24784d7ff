"""Which posts are due for a refresh: freshness tiers and the daily quota budget.

A video younger than 2 days is refreshed hourly, younger than 30 days daily, older weekly,
and an unavailable one monthly (all configurable). When more posts are due than the quota
left today allows, the longest-unrefreshed go first and the rest wait for a later scan.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from worker.api.youtube import MAX_IDS
from worker.refresh.changes import STATUS, UNAVAILABLE
from worker.refresh.facts import FactsLog
from worker.settings import Settings
from worker.site.paths import display
from worker.site.posts import Post, discover, video_posts
from worker.site.state import CHUNK, SiteState
from worker.times import parse_time


@dataclass(frozen=True)
class Tier:
    """Videos up to `max_age` seconds old (or unavailable ones) are due every `every` seconds."""

    name: str
    max_age: float
    every: float


def tiers_from(settings: Settings) -> tuple[Tier, ...]:
    """The tiers in order, the last one (unavailable videos) apart from the age rule."""
    return (
        Tier("new", settings.tiers.new_age, settings.tiers.new_every),
        Tier("recent", settings.tiers.recent_age, settings.tiers.recent_every),
        Tier("old", math.inf, settings.tiers.old_every),
        Tier(UNAVAILABLE, math.inf, settings.tiers.unavailable_every),
    )


@dataclass(frozen=True)
class DuePost:
    """A post to refresh, and when it was last checked (0 for never)."""

    path: str
    vid_id: str
    tier: str
    checked_at: float


@dataclass
class Plan:
    """What a scan found: due posts per tier, units needed, units left, and the chosen posts."""

    due_per_tier: dict[str, int] = field(default_factory=dict)
    units_needed: int = 0
    units_left: int = 0
    chosen: list[DuePost] = field(default_factory=list)
    waiting: int = 0


def due_text(due_per_tier: Mapping[str, int]) -> str:
    """The posts due per tier, as status and logs show them: `new 3, old 12` ("" when none is due)."""
    return ", ".join(f"{tier} {count}" for tier, count in due_per_tier.items())


def tier_of(post: Post, now: float, tiers: tuple[Tier, ...]) -> Tier:
    """The freshness tier of a post, from its status and its video's upload date."""
    if post.mapping.get(STATUS) == UNAVAILABLE:
        return tiers[-1]
    age = now - (parse_time(post.mapping.get("vid_date") or post.mapping.get("date")) or 0.0)
    return next(t for t in tiers[:-1] if age <= t.max_age)


@dataclass
class Scanned:
    """What a scan found: the plan of what to queue, and the posts newly bad."""

    plan: Plan
    became_bad: list[tuple[str, str]]


def scan_site(site: Path, settings: Settings, state: SiteState, now: float, units_left: int) -> Scanned:
    """Plan the due posts; a scan reads every post, so its bad ones become the site's problems."""
    bad: list[tuple[str, str]] = []
    due = due_posts(site, settings, state, now, on_bad=lambda rel, why: bad.append((display(rel), why)))
    chosen = plan(due, units_left)
    became_bad = state.new_problems(bad)
    state.replace_problems(bad)
    return Scanned(chosen, became_bad)


def due_posts(site: Path, settings: Settings, state: SiteState, now: float,
              on_bad: Callable[[str, str], None] | None = None) -> Iterator[DuePost]:
    """Stream the video posts whose tier says they are due; `on_bad(path, reason)` hears the bad ones.

    The facts of every post read are kept (refresh/facts.py), so the summary a scan writes
    next parses none of them again; the last checks come one query per CHUNK posts.
    """
    tiers = tiers_from(settings)
    log = FactsLog(site, state, settings)
    posts = video_posts(site, discover(site, settings.site.posts_globs), id_key=settings.site.id_key,
                        on_read=log.read, on_bad=on_bad)
    try:
        while chunk := list(islice(posts, CHUNK)):
            checked_at = state.checked_times([post.path for post in chunk])
            for post in chunk:
                log.as_read(post)
                tier = tier_of(post, now, tiers)
                checked = checked_at.get(post.path, 0.0)
                if now - checked >= tier.every:
                    yield DuePost(post.path, post.vid_id, tier.name, checked)
    finally:
        log.flush()


def plan(due: Iterable[DuePost], units_left: int) -> Plan:
    """Choose the longest-unrefreshed posts that the quota left today can pay for."""
    result = Plan(units_left=max(units_left, 0))
    candidates = sorted(due, key=lambda d: d.checked_at)
    for item in candidates:
        result.due_per_tier[item.tier] = result.due_per_tier.get(item.tier, 0) + 1
    result.units_needed = math.ceil(len({d.vid_id for d in candidates}) / MAX_IDS)
    videos: set[str] = set()
    for item in candidates:
        if item.vid_id not in videos and math.ceil((len(videos) + 1) / MAX_IDS) > result.units_left:
            result.waiting += 1
            continue
        videos.add(item.vid_id)
        result.chosen.append(item)
    return result
