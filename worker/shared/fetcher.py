"""Many per-post tasks, few API calls: a pending set, a short-lived stats cache and a quota in Redis.

`enqueue` adds each post's video id to the pending set as it queues the post's task. The
first fetch task that misses the cache takes its own id plus up to 49 pending ids, marks
them in flight, makes one videos.list call, and caches every answer; the tasks of those 49
posts then find their stats in the cache and call nothing. Quota units are counted per
Pacific day across all workers; when the quota is gone a pause flag stops every fetch until
the next quota day.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis

from worker.api.youtube import MAX_IDS, ApiMeter, YouTubeClient
from worker.errors import QuotaExhausted, QuotaPaused
from worker.shared.counters import add_counts
from worker.shared.keys import PAUSED_KEY, PENDING_KEY, QUOTA_TTL, quota_key, stats_key
from worker.times import next_quota_reset, quota_day

log = logging.getLogger(__name__)

IN_FLIGHT = "in-flight"
ClientFactory = Callable[[ApiMeter], YouTubeClient]


def mark_pending(client: redis.Redis, vid_ids: Iterable[str], now: float) -> None:
    """Add ids to the pending set (keeping the oldest time of each)."""
    scores = {vid: now for vid in vid_ids}
    if scores:
        client.zadd(PENDING_KEY, scores, nx=True)


def units_today(client: redis.Redis, now: float) -> int:
    """Quota units all workers spent on the current Pacific day."""
    return int(client.get(quota_key(quota_day(now))) or 0)


def paused_until(client: redis.Redis, now: float) -> float | None:
    """When fetching resumes, if it is paused for the quota."""
    value = client.get(PAUSED_KEY)
    return float(value) if value is not None and float(value) > now else None


@dataclass(frozen=True)
class Fetched:
    """The API's answer about one video: its fields, or None if it did not return it."""

    fields: dict[str, str] | None
    fetched_at: float


class SharedFetcher:
    """Gets one video's answer, from the cache or by a batched call shared with pending posts."""

    def __init__(self, client: redis.Redis, make_client: ClientFactory, *, daily_quota: int,
                 cache_ttl: int, window_seconds: float, poll: float = 0.1,
                 clock: Callable[[], float] = time.time) -> None:
        self._redis = client
        self._make_client = make_client
        self._daily_quota = daily_quota
        self._cache_ttl = cache_ttl
        # The longest one window can take; a fetcher silent for longer is presumed dead (its
        # in-flight marks expire) and the waiting tasks fetch for themselves.
        self._wait = window_seconds
        self._in_flight_ttl = max(1, math.ceil(window_seconds))
        self._poll = poll
        self._clock = clock

    async def fetch(self, vid_id: str) -> Fetched:
        """The answer for `vid_id`; raises QuotaPaused, ApiUnreachable or ApiKeyRejected."""
        deadline = self._clock() + self._wait
        while True:
            cached = self._redis.get(stats_key(vid_id))
            if cached is not None and cached != IN_FLIGHT.encode():
                return _decode(cached)
            if (cached is None and self._claim(vid_id)) or self._clock() > deadline:
                return await self._fetch_window(vid_id)
            await asyncio.sleep(self._poll)  # another task is fetching it: wait for the cache

    def _claim(self, vid_id: str) -> bool:
        return bool(self._redis.set(stats_key(vid_id), IN_FLIGHT, nx=True, ex=self._in_flight_ttl))

    async def _fetch_window(self, vid_id: str) -> Fetched:
        now = self._clock()
        try:
            self._check_quota(now)
        except QuotaPaused:
            self._redis.delete(stats_key(vid_id))
            raise
        self._redis.set(stats_key(vid_id), IN_FLIGHT, ex=self._in_flight_ttl)
        self._redis.zrem(PENDING_KEY, vid_id)
        others = self._claim_pending(MAX_IDS - 1)
        ids = [vid_id, *others]
        meter = ApiMeter()
        try:
            found = await self._make_client(meter).list_videos(ids)
        except QuotaExhausted as exc:
            self._release(ids, others, now)
            raise self._pause(now, str(exc)) from None
        except BaseException:
            self._release(ids, others, now)
            raise
        finally:
            self._count_units(meter.units, now)
            add_counts(self._redis, {"api_calls": meter.calls, "quota_units": meter.units})
        fetched_at = self._clock()
        self._store(ids, found, fetched_at)
        log.info("videos.list for %d ids (1 own + %d pending)", len(ids), len(others))
        return Fetched(found.get(vid_id), fetched_at)

    def _claim_pending(self, limit: int) -> list[str]:
        """Pop up to `limit` pending ids that nobody is fetching and that are not cached."""
        claimed: list[str] = []
        while len(claimed) < limit:
            popped = self._redis.zpopmin(PENDING_KEY, limit - len(claimed))
            if not popped:
                break
            for item in popped:
                raw = item[0]
                vid = raw.decode() if isinstance(raw, bytes) else str(raw)
                if self._claim(vid):
                    claimed.append(vid)
        return claimed

    def _store(self, ids: list[str], found: dict[str, dict[str, str]], fetched_at: float) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for vid in ids:
            payload = json.dumps({"fields": found.get(vid), "fetched_at": fetched_at})
            pipe.set(stats_key(vid), payload, ex=self._cache_ttl)
        pipe.execute()

    def _release(self, ids: list[str], others: list[str], now: float) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.delete(*(stats_key(vid) for vid in ids))
        if others:
            pipe.zadd(PENDING_KEY, {vid: now for vid in others}, nx=True)
        pipe.execute()

    def _check_quota(self, now: float) -> None:
        resume = paused_until(self._redis, now)
        if resume is not None:
            raise QuotaPaused("fetching is paused: the daily quota is used up", resume)
        if units_today(self._redis, now) >= self._daily_quota:
            raise self._pause(now, f"the daily quota budget of {self._daily_quota} units is used up")

    def _pause(self, now: float, why: str) -> QuotaPaused:
        resume = next_quota_reset(now)
        self._redis.set(PAUSED_KEY, str(resume), exat=int(resume) + 1)
        log.warning("pausing all fetches until the next quota day: %s", why)
        return QuotaPaused(f"{why}; fetching resumes after midnight Pacific time", resume)

    def _count_units(self, units: int, now: float) -> None:
        if units:
            key = quota_key(quota_day(now))
            pipe = self._redis.pipeline(transaction=False)
            pipe.incrby(key, units)
            pipe.expire(key, QUOTA_TTL)
            pipe.execute()


def _decode(raw: Any) -> Fetched:
    data = json.loads(raw)
    return Fetched(fields=data["fields"], fetched_at=float(data["fetched_at"]))
