"""Per-process resources of a worker: one event loop, one httpx client, one Redis, one state db.

Built when a worker process starts and closed when it ends (create_app connects Celery's
signals to ProcessRuntime), so no connection is shared across a fork.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import httpx
import redis

from worker.api.fields import request_mask
from worker.api.http import make_http_client
from worker.api.youtube import ApiMeter, YouTubeClient
from worker.errors import ConfigError
from worker.outputs.notify import Notifier
from worker.refresh.write import sweep_site
from worker.settings import Settings
from worker.shared.fetcher import SharedFetcher
from worker.shared.keys import in_flight_ttl
from worker.site.state import SiteState

log = logging.getLogger(__name__)
T = TypeVar("T")


def redis_client(settings: Settings) -> redis.Redis:
    """A Redis client for REDIS_URL that gives up on a dead server within seconds."""
    return redis.Redis.from_url(settings.queue.redis_url, socket_connect_timeout=5, socket_timeout=10,
                                health_check_interval=30)


class Runtime:
    """What tasks in one process share; attributes are created when first needed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on this process's loop."""
        return self.loop.run_until_complete(coro)

    @cached_property
    def site(self) -> Path:
        """The site this worker writes (POSTREFRESH_SITE); temp files of a killed writer go."""
        site = self.settings.require_site()
        sweep_site(site, self.settings)
        return site

    @cached_property
    def redis(self) -> redis.Redis:
        """Redis for the shared batching, dedupe and activity keys (REDIS_URL)."""
        return redis_client(self.settings)

    @cached_property
    def http(self) -> httpx.AsyncClient:
        """The one HTTP client of this process."""
        return make_http_client(self.settings)

    @cached_property
    def state(self) -> SiteState:
        """The site's state database."""
        return SiteState(self.site)

    @cached_property
    def fetcher(self) -> SharedFetcher:
        """The batched, cached, quota-aware fetcher."""
        s = self.settings
        return SharedFetcher(self.redis, self._client, daily_quota=s.api.daily_quota,
                             cache_ttl=s.queue.stats_cache_ttl, in_flight_ttl=in_flight_ttl(s.api))

    @cached_property
    def notifier(self) -> Notifier | None:
        """Where notifications go (`notify`), or None when none is set."""
        return Notifier.from_settings(self.settings)

    def _client(self, meter: ApiMeter) -> YouTubeClient:
        # A fresh client per window: one window's fatal error must not stop the process forever.
        s = self.settings
        return YouTubeClient(self.http, api_url=s.api.url, api_key=s.api.key or "",
                             attempts=s.api.retry_attempts, max_wait=s.api.retry_max_wait,
                             concurrency=1, meter=meter, fields=request_mask(s.api_paths))

    def close(self) -> None:
        """Close what was opened."""
        if "http" in self.__dict__:
            self.run(self.http.aclose())
        if "state" in self.__dict__:
            self.state.close()
        if "redis" in self.__dict__:
            self.redis.close()
        self.loop.close()


class ProcessRuntime:
    """The Runtime of this worker process, opened and closed by Celery's signals (see create_app)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._runtime: Runtime | None = None

    def open(self, **_: Any) -> None:
        """Build this process's Runtime (worker_process_init: a prefork child, or the solo pool)."""
        self._runtime = Runtime(self._settings)

    def close(self, **_: Any) -> None:
        """Close this process's Runtime, if it has one (at the process's or the worker's shutdown)."""
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None
            log.info("closed the runtime of worker process %d (HTTP client, Redis, state db)", os.getpid())

    def get(self) -> Runtime:
        """This process's Runtime; a pool that starts no worker process has none."""
        if self._runtime is None:
            raise ConfigError("this worker has no postrefresh runtime: start it with the prefork pool "
                              "(the default) or -P solo; -P threads, gevent or eventlet never start one")
        return self._runtime
