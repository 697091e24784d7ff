"""Many posts, few API calls: a pending set, a short-lived stats cache and a quota in Redis.

`enqueue` adds each post's video id to the pending set as it queues the post's task. A fetch
task whose ids miss the cache opens one window: in one atomic step (a Lua script, so two
tasks starting at the same instant never split the pending ids between them) it marks its
own ids in flight and tops them up to 50 with pending ids nobody is fetching, then makes one
videos.list call and caches every answer. A task whose ids another window took waits for the
cache, so calls stay close to ceil(ids / 50) however many processes run. Quota units are
counted per Pacific day across all workers; when the quota is gone a pause flag stops every
fetch until the next quota day.
"""

from __future__ import annotations

import asyncio
import json
import logging
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

# KEYS[1] the pending set; ARGV: stats key prefix, in-flight mark, its TTL, window size, force
# ("1": take own ids even if marked in flight, their fetcher being presumed dead), own ids.
# Returns {own ids claimed, pending ids claimed}; it claims no pending id unless it claimed an
# own one, so a task never opens a window for others only.
_CLAIM_WINDOW = """
local prefix, mark, ttl, limit, force = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local own, others = {}, {}
for i = 6, #ARGV do
  if #own >= limit then break end
  local ok
  if force == "1" then
    ok = redis.call("SET", prefix .. ARGV[i], mark, "EX", ttl)
  else
    ok = redis.call("SET", prefix .. ARGV[i], mark, "NX", "EX", ttl)
  end
  if ok then
    own[#own + 1] = ARGV[i]
    redis.call("ZREM", KEYS[1], ARGV[i])
  end
end
while #own > 0 and #own + #others < limit do
  local popped = redis.call("ZPOPMIN", KEYS[1], limit - #own - #others)
  if #popped == 0 then break end
  for j = 1, #popped, 2 do
    if redis.call("SET", prefix .. popped[j], mark, "NX", "EX", ttl) then
      others[#others + 1] = popped[j]
    end
  end
end
return {own, others}
"""


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


@dataclass(frozen=True)
class Window:
    """The ids one videos.list call asks for: the task's own, then pending ones of other posts."""

    own: list[str]
    others: list[str]

    @property
    def ids(self) -> list[str]:
        """Every id of the window, own first."""
        return [*self.own, *self.others]


class SharedFetcher:
    """Gets videos' answers, from the cache or by batched calls shared with pending posts."""

    def __init__(self, client: redis.Redis, make_client: ClientFactory, *, daily_quota: int,
                 cache_ttl: int, in_flight_ttl: int, poll: float = 0.1,
                 clock: Callable[[], float] = time.time) -> None:
        self._redis = client
        self._make_client = make_client
        self._daily_quota = daily_quota
        self._cache_ttl = cache_ttl
        # keys.in_flight_ttl: a fetcher silent for longer is presumed dead (its in-flight marks
        # expire) and the waiting tasks fetch for themselves.
        self._wait = in_flight_ttl
        self._in_flight_ttl = in_flight_ttl
        self._poll = poll
        self._clock = clock
        self._claim_window = client.register_script(_CLAIM_WINDOW)

    async def fetch(self, vid_ids: Iterable[str]) -> dict[str, Fetched]:
        """The answer for each id; raises QuotaPaused, ApiUnreachable or ApiKeyRejected."""
        wanted = list(dict.fromkeys(vid_ids))
        answers: dict[str, Fetched] = {}
        deadline = self._clock() + self._wait
        while missing := [vid for vid in wanted if vid not in answers]:
            unclaimed = self._read_cache(missing, answers)
            left = [vid for vid in missing if vid not in answers]
            forced = self._clock() > deadline
            take = left if forced else unclaimed
            window = self._open(take, forced) if take else None
            if window is not None:
                answers.update(await self._call(window, wanted))
            elif left:
                await asyncio.sleep(self._poll)  # other windows are fetching them: wait for the cache
        return answers

    def _read_cache(self, vid_ids: list[str], answers: dict[str, Fetched]) -> list[str]:
        """Add the cached answers to `answers`; returns the ids that nobody is fetching."""
        unclaimed = []
        for vid, raw in zip(vid_ids, self._redis.mget([stats_key(v) for v in vid_ids]), strict=True):
            if raw is None:
                unclaimed.append(vid)
            elif raw != IN_FLIGHT.encode():
                answers[vid] = _decode(raw)
        return unclaimed

    def _open(self, vid_ids: list[str], forced: bool) -> Window | None:
        """Claim a window atomically; None when other windows took every one of `vid_ids`."""
        now = self._clock()
        self._check_quota(now)
        own, others = self._claim_window(
            keys=[PENDING_KEY],
            args=[stats_key(""), IN_FLIGHT, self._in_flight_ttl, MAX_IDS, int(forced), *vid_ids])
        if not own:
            return None
        return Window([_text(v) for v in own], [_text(v) for v in others])

    async def _call(self, window: Window, wanted: list[str]) -> dict[str, Fetched]:
        now = self._clock()
        meter = ApiMeter()
        try:
            found = await self._make_client(meter).list_videos(window.ids)
        except QuotaExhausted as exc:
            self._release(window, now)
            raise self._pause(now, str(exc)) from None
        except BaseException:
            self._release(window, now)
            raise
        finally:
            self._count_units(meter.units, now)
            add_counts(self._redis, {"api_calls": meter.calls, "quota_units": meter.units})
        fetched_at = self._clock()
        self._store(window.ids, found, fetched_at)
        log.info("videos.list for %d ids (%d own + %d pending)", len(window.ids), len(window.own),
                 len(window.others))
        return {vid: Fetched(found.get(vid), fetched_at) for vid in window.ids if vid in wanted}

    def _store(self, ids: list[str], found: dict[str, dict[str, str]], fetched_at: float) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for vid in ids:
            payload = json.dumps({"fields": found.get(vid), "fetched_at": fetched_at})
            pipe.set(stats_key(vid), payload, ex=self._cache_ttl)
        pipe.execute()

    def _release(self, window: Window, now: float) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.delete(*(stats_key(vid) for vid in window.ids))
        if window.others:
            pipe.zadd(PENDING_KEY, {vid: now for vid in window.others}, nx=True)
        pipe.execute()

    def _check_quota(self, now: float) -> None:
        resume = paused_until(self._redis, now)
        if resume is not None:
            raise QuotaPaused("fetching is paused: the daily quota is used up", resume)
        if units_today(self._redis, now) >= self._daily_quota:
            raise self._pause(now, f"the daily quota budget of {self._daily_quota} units is used up")

    def _pause(self, now: float, why: str) -> QuotaPaused:
        resume = next_quota_reset(now)
        began = bool(self._redis.set(PAUSED_KEY, str(resume), exat=int(resume) + 1, nx=True))
        log.warning("pausing all fetches until the next quota day: %s", why)
        return QuotaPaused(f"{why}; fetching resumes after midnight Pacific time", resume, began=began)

    def _count_units(self, units: int, now: float) -> None:
        if units:
            key = quota_key(quota_day(now))
            pipe = self._redis.pipeline(transaction=False)
            pipe.incrby(key, units)
            pipe.expire(key, QUOTA_TTL)
            pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode(raw: Any) -> Fetched:
    data = json.loads(raw)
    return Fetched(fields=data["fields"], fetched_at=float(data["fetched_at"]))
