"""Shared helpers for tests that talk to the real YouTube simulator over loopback."""

from __future__ import annotations

import random
import string
from collections.abc import Iterator

import httpx
import pytest

from worker.simulator.config import SimulatorConfig
from worker.simulator.server import YouTubeSimulator

API_KEY = "sim-secret-key-1234567890"


@pytest.fixture
def simulator() -> Iterator[YouTubeSimulator]:
    """A running simulator accepting API_KEY; replace `.config` to change its behaviour."""
    with YouTubeSimulator(SimulatorConfig(api_keys=frozenset({API_KEY}))) as sim:
        yield sim


def make_client(read_timeout: float = 2.0, connections: int = 16) -> httpx.AsyncClient:
    """A real httpx client with small timeouts, like make_http_client but test-sized."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(connect=1.0, read=read_timeout, write=1.0, pool=5.0),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        follow_redirects=False,
    )


def video_ids(count: int, seed: int = 0) -> list[str]:
    """`count` distinct, valid, reproducible video ids."""
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + "-_"
    ids: dict[str, None] = {}
    while len(ids) < count:
        ids["".join(rng.choice(alphabet) for _ in range(11))] = None
    return list(ids)


class FakeSleep:
    """An injectable async sleep that records the waits and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
