"""Prometheus metrics: a textfile of the last `run`, and an exporter of the workers' Redis counters.

The Celery workers keep plain counters in one Redis hash (shared/counters.py); `postrefresh
metrics` serves them through a custom collector. Task latency comes from Flower's /metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from threading import Thread
from typing import TYPE_CHECKING, get_args
from wsgiref.simple_server import WSGIServer

import redis
from prometheus_client import CollectorRegistry, Gauge, start_http_server, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from worker.refresh.write import Status
from worker.shared.counters import read_counts
from worker.shared.fetcher import units_today

if TYPE_CHECKING:
    from worker.refresh.pipeline import RunReport

OUTCOMES = get_args(Status)
# Redis hash field -> (metric name without _total, help).
COUNTERS: Mapping[str, tuple[str, str]] = {
    "api_calls": ("postrefresh_api_calls", "videos.list calls sent (retries included)"),
    "quota_units": ("postrefresh_quota_units", "YouTube Data API quota units spent"),
    "dislike_calls": ("postrefresh_dislike_calls", "Return YouTube Dislike API requests sent"),
    "dislikes_waiting": ("postrefresh_dislikes_waiting",
                         "videos whose dislikes were skipped for the day's limit"),
    "thumbnail_bytes": ("postrefresh_thumbnail_bytes", "thumbnail bytes written to the site"),
}


class RedisCounters(Collector):
    """Renders the Redis counters (and today's quota use) at each scrape."""

    def __init__(self, client: redis.Redis, quota_today: Collector | None = None) -> None:
        self._redis = client
        self._quota_today = quota_today

    def collect(self) -> Iterator[Metric]:
        """One scrape: read the hash once, yield every family (zero when never counted)."""
        values = read_counts(self._redis)
        posts = CounterMetricFamily("postrefresh_posts", "posts written or checked, by outcome",
                                    labels=["outcome"])
        for outcome in OUTCOMES:
            posts.add_metric([outcome], values.get(f"posts:{outcome}", 0))
        yield posts
        for field, (name, text) in COUNTERS.items():
            yield CounterMetricFamily(name, text, value=values.get(field, 0))
        if self._quota_today is not None:
            yield from self._quota_today.collect()


class QuotaToday(Collector):
    """A gauge of the quota units all workers spent on the current Pacific day."""

    def __init__(self, client: redis.Redis, budget: int) -> None:
        self._redis = client
        self._budget = budget

    def collect(self) -> Iterator[Metric]:
        """Today's use and the budget."""
        yield GaugeMetricFamily("postrefresh_quota_units_today", "quota units spent today (Pacific day)",
                                value=units_today(self._redis, time.time()))
        yield GaugeMetricFamily("postrefresh_quota_budget", "daily_quota: units allowed per day",
                                value=self._budget)


def serve(client: redis.Redis, port: int, addr: str = "127.0.0.1", budget: int | None = None
          ) -> tuple[WSGIServer, Thread]:
    """Serve /metrics for the workers' counters on `addr:port` (a daemon thread)."""
    registry = CollectorRegistry(auto_describe=False)
    quota = QuotaToday(client, budget) if budget is not None else None
    registry.register(RedisCounters(client, quota))
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return server, thread


def write_run_textfile(path: Path, report: RunReport, exit_code: int) -> None:
    """Write the last run's numbers in node_exporter's textfile format (atomically)."""
    registry = CollectorRegistry()

    def gauge(name: str, text: str, value: float) -> None:
        Gauge(name, text, registry=registry).set(value)

    posts = Gauge("postrefresh_last_run_posts", "posts of the last run, by outcome", ["outcome"],
                  registry=registry)
    for outcome in OUTCOMES:
        posts.labels(outcome).set(report.counts.get(outcome, 0))
    gauge("postrefresh_last_run_api_calls", "videos.list calls of the last run", report.meter.calls)
    gauge("postrefresh_last_run_quota_units", "quota units the last run spent", report.meter.units)
    dislikes = report.dislikes
    gauge("postrefresh_last_run_dislike_calls", "dislike API requests of the last run",
          dislikes.calls if dislikes else 0)
    gauge("postrefresh_last_run_dislikes_waiting", "videos whose dislikes wait for the day's limit",
          dislikes.waiting if dislikes else 0)
    gauge("postrefresh_last_run_thumbnail_bytes", "thumbnail bytes the last run wrote",
          report.thumbnail_bytes)
    gauge("postrefresh_last_run_seconds", "how long the last run took", report.seconds)
    gauge("postrefresh_last_run_exit_code", "the last run's exit code", exit_code)
    gauge("postrefresh_last_run_timestamp_seconds", "when the last run ended (Unix time)", time.time())
    write_to_textfile(str(path), registry)
