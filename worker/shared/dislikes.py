"""Dislikes in the Celery path: one shared Redis limiter, a short cache, and per-day counts.

The fetch task calls `dislikes_for` after it has the video's shared answer. A video's
estimate is cached like its stats (posts sharing a video ask once); past the per-minute
limit the task waits for the next minute, past the daily one it skips the dislikes (the
stats are still written) and counts the video as waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import redis

from worker.api.dislikes import DislikeClient, DislikeMeter
from worker.settings import DISLIKE_FIELD, Settings
from worker.shared.counters import add_counts
from worker.shared.keys import RYD_COUNTS_TTL, ryd_counts_key, ryd_value_key
from worker.shared.limiter import RedisWindowLimiter
from worker.times import utc_day

log = logging.getLogger(__name__)

NO_VALUE = "-"
MAX_MINUTE_WAITS = 3


def limiter_for(cache: redis.Redis, settings: Settings) -> RedisWindowLimiter:
    """The limiter every worker shares, as the settings size it."""
    return RedisWindowLimiter(cache, settings.dislikes.per_minute, settings.dislikes.per_day)


async def dislike_fields(http: httpx.AsyncClient, cache: redis.Redis, settings: Settings,
                         vid_id: str) -> dict[str, str]:
    """`{"ryd.dislikes": "…"}` to merge into the video's fields, or {} when there is none."""
    client = DislikeClient.from_settings(http, settings, DislikeMeter())
    value = await dislikes_for(client, limiter_for(cache, settings), cache, vid_id,
                               cache_ttl=settings.queue.stats_cache_ttl)
    return {} if value is None else {DISLIKE_FIELD: value}


async def dislikes_for(client: DislikeClient, limiter: RedisWindowLimiter, cache: redis.Redis,
                       vid_id: str, *, cache_ttl: int,
                       sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> str | None:
    """The video's estimated dislikes, within the shared limits; None when none or over budget."""
    cached = cache.get(ryd_value_key(vid_id))
    if cached is not None:
        text = cached.decode() if isinstance(cached, bytes) else str(cached)
        return None if text == NO_VALUE else text
    for _ in range(MAX_MINUTE_WAITS):
        verdict = limiter.acquire()
        if verdict == "ok":
            before = (client.meter.fetched, client.meter.no_value)
            calls = client.meter.calls
            value = await client.dislikes(vid_id)
            add_counts(cache, {"dislike_calls": client.meter.calls - calls})
            _count(cache, _outcome(client, before, value))
            if value is not None or client.meter.no_value > before[1]:
                cache.set(ryd_value_key(vid_id), value or NO_VALUE, ex=cache_ttl)
            return value
        if verdict == "day":
            break
        await sleep(limiter.seconds_to_next_minute())
    _count(cache, "waiting")
    add_counts(cache, {"dislikes_waiting": 1})
    log.info("dislikes of %s skipped: the dislike API's limit is used up", vid_id)
    return None


def status(cache: redis.Redis, limiter: RedisWindowLimiter, now: float | None = None) -> dict[str, Any]:
    """The limiter's state and today's dislike outcomes, for `postrefresh status`."""
    state = limiter.state()
    raw = cache.hgetall(ryd_counts_key(utc_day(time.time() if now is None else now)))
    counts = {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in raw.items()}
    return {"used_this_minute": state.used_this_minute, "per_minute": state.per_minute,
            "used_today": state.used_today, "per_day": state.per_day, "today": counts}


def as_text(facts: dict[str, Any]) -> str:
    """One status line, e.g. "dislikes: 120 of 10000 requests today, 3 of 100 this minute; ..."."""
    today = facts["today"]
    line = (f"dislikes: {facts['used_today']} of {facts['per_day']} requests today, "
            f"{facts['used_this_minute']} of {facts['per_minute']} this minute; "
            f"{today.get('fetched', 0)} fetched")
    if today.get("waiting"):
        line += f", {today['waiting']} wait for tomorrow's limit"
    return line


def _outcome(client: DislikeClient, before: tuple[int, int], value: str | None) -> str:
    if value is not None:
        return "fetched"
    return "no_value" if client.meter.no_value > before[1] else "failed"


def _count(cache: redis.Redis, outcome: str) -> None:
    key = ryd_counts_key(utc_day(time.time()))
    pipe = cache.pipeline(transaction=False)
    pipe.hincrby(key, outcome, 1)
    pipe.expire(key, RYD_COUNTS_TTL)
    pipe.execute()
