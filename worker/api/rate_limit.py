"""The Return YouTube Dislike API's limits in one process: a token bucket per minute, a daily budget.

`TokenBucket` serves `postrefresh run`; the Celery workers share shared/limiter.py instead.
It takes an injectable clock and sleep, so tests never wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


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
