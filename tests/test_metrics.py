"""Prometheus metrics: the run's textfile, and the workers' exporter scraped over real HTTP."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.celery_fixtures import POSTREFRESH, ROOT, celery_env, free_port, redis_client, redis_url, wait_for
from tests.conftest import CliResult
from worker.outputs.metrics import serve
from worker.shared.counters import add_counts
from worker.simulator.server import YouTubeSimulator

__all__ = ["redis_client", "redis_url"]  # fixtures used below
pytestmark = pytest.mark.timeout(60)
Cli = Callable[..., CliResult]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_run_writes_its_numbers_as_a_node_exporter_textfile(cli: Cli, site: Path, sim: YouTubeSimulator,
                                                            tmp_path: Path) -> None:
    target = tmp_path / "textfile" / "postrefresh.prom"
    target.parent.mkdir()
    result = cli("run", "--site", str(site), "--metrics-file", str(target))
    assert result.code == 0, result.err
    got = samples(target.read_text())
    assert got[("postrefresh_last_run_posts", (("outcome", "refreshed"),))] == 12
    assert got[("postrefresh_last_run_posts", (("outcome", "bad"),))] == 0
    assert got[("postrefresh_last_run_api_calls", ())] == sim.counters.api_requests == 1
    assert got[("postrefresh_last_run_quota_units", ())] == 1
    assert got[("postrefresh_last_run_thumbnail_bytes", ())] > 0
    assert got[("postrefresh_last_run_exit_code", ())] == 0
    assert got[("postrefresh_last_run_timestamp_seconds", ())] > 1.7e9
    assert [p.name for p in target.parent.iterdir()] == ["postrefresh.prom"]  # written atomically


def test_the_exporter_serves_the_workers_redis_counters_over_http(redis_client: redis.Redis) -> None:
    add_counts(redis_client, {"posts:refreshed": 7, "posts:bad": 1, "api_calls": 3, "quota_units": 3,
                              "dislike_calls": 5, "thumbnail_bytes": 1234})
    add_counts(redis_client, {"posts:refreshed": 2, "api_calls": 0})
    redis_client.set("postrefresh:quota:2000-01-01", 99)  # another day's quota is not today's
    port = free_port()
    server, thread = serve(redis_client, port, budget=10_000)
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert response.status_code == 200
    got = samples(response.text)
    assert got[("postrefresh_posts_total", (("outcome", "refreshed"),))] == 9
    assert got[("postrefresh_posts_total", (("outcome", "unchanged"),))] == 0
    assert got[("postrefresh_posts_total", (("outcome", "bad"),))] == 1
    assert got[("postrefresh_api_calls_total", ())] == 3
    assert got[("postrefresh_quota_units_total", ())] == 3
    assert got[("postrefresh_dislike_calls_total", ())] == 5
    assert got[("postrefresh_dislikes_waiting_total", ())] == 0
    assert got[("postrefresh_thumbnail_bytes_total", ())] == 1234
    assert got[("postrefresh_quota_units_today", ())] == 0
    assert got[("postrefresh_quota_budget", ())] == 10_000


def test_postrefresh_metrics_serves_until_interrupted(
        redis_url: str, redis_client: redis.Redis, sim: YouTubeSimulator, site: Path, tmp_path: Path) -> None:
    add_counts(redis_client, {"posts:unchanged": 4})
    config = tmp_path / "empty.toml"
    config.write_text("")
    port = free_port()
    proc = subprocess.Popen([POSTREFRESH, "metrics", "--port", str(port)], cwd=ROOT,
                            env=celery_env(redis_url, sim, site, config),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _answers(port), 20, "the exporter did not start")
        got = samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
        assert got[("postrefresh_posts_total", (("outcome", "unchanged"),))] == 4
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 and f":{port}/metrics" in out


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
