"""What the distributed refresher did today, kept in Redis for `postrefresh status`."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

import redis

from worker.refresh.write import Outcome
from worker.shared.keys import ERRORS_KEY, KEEP_ERRORS, OUTCOMES_TTL, outcomes_key
from worker.times import quota_day, utc_stamp


def record_outcomes(client: redis.Redis, outcomes: Iterable[Outcome], now: float | None = None) -> None:
    """Count posts' outcomes in one round trip, and keep the reason of each that failed."""
    moment = time.time() if now is None else now
    key = outcomes_key(quota_day(moment))
    done = list(outcomes)
    pipe = client.pipeline(transaction=False)
    for status, count in Counter(o.status for o in done).items():
        pipe.hincrby(key, status, count)
    pipe.expire(key, OUTCOMES_TTL)
    pipe.execute()
    for outcome in done:
        if outcome.status in ("bad", "gone"):
            record_error(client, f"{outcome.path}: {outcome.reason}", moment)


def record_error(client: redis.Redis, text: str, now: float | None = None) -> None:
    """Keep one error line (the newest KEEP_ERRORS are kept)."""
    moment = time.time() if now is None else now
    stamp = utc_stamp(moment)
    pipe = client.pipeline(transaction=False)
    pipe.lpush(ERRORS_KEY, f"{stamp} {text}")
    pipe.ltrim(ERRORS_KEY, 0, KEEP_ERRORS - 1)
    pipe.execute()


def today(client: redis.Redis, now: float) -> dict[str, Any]:
    """Outcome counts of the current Pacific day and the newest errors."""
    raw = client.hgetall(outcomes_key(quota_day(now)))
    counts = {_text(k): int(v) for k, v in raw.items()}
    errors = [_text(e) for e in client.lrange(ERRORS_KEY, 0, 9)]
    return {"outcomes": counts, "last_errors": errors}


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
