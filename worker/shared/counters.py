"""The workers' shared counters: one Redis hash that every process adds to and the exporter reads.

Any number of forked processes on any host add to the same totals (HINCRBY), so no
multiprocess metrics registry is needed; `postrefresh metrics` renders them (outputs/metrics.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import redis

from worker.shared.keys import METRICS_KEY


def add_counts(client: redis.Redis, amounts: Mapping[str, int]) -> None:
    """Add to the workers' shared counters (the exporter's COUNTERS fields, or `posts:<outcome>`)."""
    nonzero = {name: amount for name, amount in amounts.items() if amount}
    if nonzero:
        pipe = client.pipeline(transaction=False)
        for name, amount in nonzero.items():
            pipe.hincrby(METRICS_KEY, name, amount)
        pipe.execute()


def read_counts(client: redis.Redis) -> dict[str, int]:
    """Every counter as it stands; a counter never added to is absent."""
    raw = client.hgetall(METRICS_KEY)
    return {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in raw.items()}
