"""Rate limits for the Return YouTube Dislike API: a token bucket per minute and a daily budget.

`TokenBucket` serves one process (`postrefresh run`); `RedisWindowLimiter` is shared by every
Celery worker through fixed-window counters in Redis (INCR + EXPIRE per minute and per day).
Both take an injectable clock (and the bucket a sleep), so tests never wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import redis

from worker.times import utc_day

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Verdict = Literal["ok", "minute", "day"]
KEY_PREFIX = "postrefresh:ryd"
DAY_KEY_SECONDS = 2 * 86_400


class TokenBucket:
    """`per_minute` tokens refilled evenly (bursts up to that), and at most `per_day` in all.

    `used_today` is what earlier runs already spent today (kept by the caller).
    """

    def __init__(self, per_minute: int, per_day: int, *, used_today: int = 0,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        if per_minute < 1 or per_day < 0:
            raise ValueError("per_minute must be at least 1 and per_day at least 0")
        self.per_minute = per_minute
        self.per_day = per_day
        self.used_today = used_today
        self.taken = 0
        self._rate = per_minute / 60.0
        self._tokens = float(per_minute)
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = asyncio.Lock()

    @property
    def day_spent(self) -> bool:
        """True when the daily budget is used up."""
        return self.used_today >= self.per_day

    async def take(self) -> bool:
        """Wait for a token; False at once (and from then on) when the daily budget is spent."""
        async with self._lock:  # first come, first served: waiters queue instead of racing
            if self.day_spent:
                return False
            while True:
                self._refill()
                if self._tokens >= 1:
                    self._tokens -= 1
                    self.used_today += 1
                    self.taken += 1
                    return True
                await self._sleep((1 - self._tokens) / self._rate)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.per_minute), self._tokens + (now - self._last) * self._rate)
        self._last = now


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
        pipe.expire(minute_key, 120)
        pipe.incr(day_key)
        pipe.expire(day_key, DAY_KEY_SECONDS)
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
        return f"{KEY_PREFIX}:day:{utc_day(now)}", f"{KEY_PREFIX}:minute:{int(now // 60)}"
