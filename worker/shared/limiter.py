"""The dislike API's limits shared by every Celery worker: fixed-window counters in Redis.

INCR + EXPIRE per minute and per UTC day; `TokenBucket` (api/rate_limit.py) is the one-process
version `postrefresh run` uses. The clock is injectable, so tests never wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import redis

from worker.shared.keys import RYD_DAY_TTL, RYD_MINUTE_TTL, ryd_day_key, ryd_minute_key
from worker.times import utc_day

Clock = Callable[[], float]
Verdict = Literal["ok", "minute", "day"]


@dataclass(frozen=True)
class LimiterState:
    """What `postrefresh status` shows of the shared limiter."""

    used_this_minute: int
    per_minute: int
    used_today: int
    per_day: int


class RedisWindowLimiter:
    """Fixed-window counters in Redis, per minute and per UTC day, shared by all workers."""

    def __init__(self, client: redis.Redis, per_minute: int, per_day: int, *,
                 clock: Clock = time.time) -> None:
        self._redis = client
        self.per_minute = per_minute
        self.per_day = per_day
        self._clock = clock

    def acquire(self) -> Verdict:
        """Count one request: "ok" to send it, "minute" to wait for the next minute, "day" to skip."""
        now = self._clock()
        day_key, minute_key = self._keys(now)
        if int(self._redis.get(day_key) or 0) >= self.per_day:
            return "day"
        pipe = self._redis.pipeline(transaction=True)
        pipe.incr(minute_key)
        pipe.expire(minute_key, RYD_MINUTE_TTL)
        pipe.incr(day_key)
        pipe.expire(day_key, RYD_DAY_TTL)
        minute_count, _, day_count, _ = pipe.execute()
        if int(day_count) > self.per_day:
            return "day"
        if int(minute_count) > self.per_minute:
            self._redis.decr(day_key)  # not sent: give the day's unit back
            return "minute"
        return "ok"

    def seconds_to_next_minute(self) -> float:
        """How long until the per-minute window turns."""
        return 60.0 - self._clock() % 60.0

    def state(self) -> LimiterState:
        """The current counts, for `postrefresh status`."""
        day_key, minute_key = self._keys(self._clock())
        minute, day = self._redis.mget(minute_key, day_key)
        return LimiterState(min(int(minute or 0), self.per_minute), self.per_minute,
                            min(int(day or 0), self.per_day), self.per_day)

    def _keys(self, now: float) -> tuple[str, str]:
        return ryd_day_key(utc_day(now)), ryd_minute_key(int(now // 60))
