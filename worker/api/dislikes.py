"""The Return YouTube Dislike API client: one video's estimated dislikes per `GET /votes?videoId=`.

Dislikes are a third-party estimate (YouTube hides them); they are opt-in (`dislikes = true`)
and land in the flat field `ryd.dislikes`, which `Settings.refreshed_fields` maps to the post's
`dislikeCount`. A failure here never fails a post: the stats are written, the dislikes wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from worker.api.http import endpoint, exchange, raise_if_transient
from worker.api.rate_limit import TokenBucket
from worker.api.retry import retry_policy
from worker.errors import TransientApiError
from worker.settings import DISLIKE_FIELD, Settings
from worker.video_id import is_video_id

log = logging.getLogger(__name__)


@dataclass
class DislikeMeter:
    """What the dislike client did in a run (or a worker)."""

    calls: int = 0
    fetched: int = 0
    no_value: int = 0
    failed: int = 0
    waiting: int = 0


class DislikeClient:
    """Asks the RYD API for one video at a time through a shared httpx.AsyncClient."""

    def __init__(self, http: httpx.AsyncClient, *, base_url: str, timeout: float, attempts: int,
                 max_wait: float, meter: DislikeMeter,
                 sleep: Callable[[float], Awaitable[None]] | None = None) -> None:
        self._http = http
        self._url = endpoint(base_url, "votes")
        self._timeout = timeout
        self._attempts = attempts
        self._max_wait = max_wait
        self._sleep = sleep
        self.meter = meter

    @classmethod
    def from_settings(cls, http: httpx.AsyncClient, settings: Settings, meter: DislikeMeter
                      ) -> DislikeClient:
        """The client as the settings describe it."""
        return cls(http, base_url=settings.dislikes.url, timeout=settings.dislikes.timeout,
                   attempts=settings.dislikes.retry_attempts,
                   max_wait=settings.dislikes.retry_max_wait, meter=meter)

    async def dislikes(self, vid_id: str) -> str | None:
        """The estimated dislikes as a decimal string; None if deleted, unknown or unreachable."""
        if not is_video_id(vid_id):
            raise ValueError(f"not a YouTube video id: {vid_id[:20]!r}")
        try:
            async for attempt in retry_policy(attempts=self._attempts, max_wait=self._max_wait,
                                              sleep=self._sleep):
                with attempt:
                    value = await self._call(vid_id)
        except TransientApiError as exc:
            self.meter.failed += 1
            log.warning("dislikes of %s not fetched after %d attempts (%s); the post keeps its value",
                        vid_id, self._attempts, exc)
            return None
        if value is None:
            self.meter.no_value += 1
        else:
            self.meter.fetched += 1
        return value

    async def _call(self, vid_id: str) -> str | None:
        self.meter.calls += 1
        async with exchange(self._http, self._url, what="the dislike API",
                            params={"videoId": vid_id}, timeout=self._timeout) as response:
            status = response.status_code
            if status in (400, 404):
                return None  # unknown or invalid id: no estimate
            raise_if_transient(response, f"the dislike API answered {status}")
            if status != 200:
                log.warning("dislike API answered %d for %s; skipped", status, vid_id)
                return None
            return _read_votes(response, vid_id)


def _read_votes(response: httpx.Response, vid_id: str) -> str | None:
    try:
        payload: Any = response.json()
    except ValueError:
        raise TransientApiError("the dislike API answered malformed JSON") from None
    if not isinstance(payload, Mapping):
        raise TransientApiError("the dislike API answered something other than an object")
    if payload.get("deleted") is True:
        return None
    value = payload.get("dislikes")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        log.warning("dislike API gave no usable count for %s (%r); skipped", vid_id, str(value)[:20])
        return None
    return str(value)


async def add_dislikes(client: DislikeClient, limiter: TokenBucket, found: dict[str, dict[str, str]],
                       concurrency: int) -> None:
    """Merge `ryd.dislikes` into the fields of the videos found, as the limiter allows.

    Videos left once the daily budget is spent are counted in the meter's `waiting`.
    """
    slots = asyncio.Semaphore(concurrency)

    async def one(vid_id: str) -> None:
        async with slots:
            if not await limiter.take():
                client.meter.waiting += 1
                return
            value = await client.dislikes(vid_id)
        if value is not None:
            found[vid_id][DISLIKE_FIELD] = value

    await asyncio.gather(*(one(vid) for vid in list(found)))
