"""The distributed refresher with real parts: private Redis, celery worker processes, simulator."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest
import redis

from bench.gen_posts import generate_site
from tests.celery_fixtures import (
    CELERY,
    ROOT,
    celery_env,
    celery_worker,
    postrefresh,
    redis_client,
    redis_url,
    wait_for,
)
from tests.conftest import FAST_CONFIG
from tests.simulator_fixtures import API_KEY
from tests.test_run import assert_matches_truth, mapping, video_posts
from worker.simulator.server import YouTubeSimulator

__all__ = ["redis_client", "redis_url"]  # fixtures used below
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def env(redis_url: str, redis_client: redis.Redis, sim: YouTubeSimulator, tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    generate_site(site, 500, seed=7)
    config = tmp_path / "fast.toml"
    config.write_text(FAST_CONFIG + "thumbnails = false\n")
    return celery_env(redis_url, sim, site, config)


def site_of(env: dict[str, str]) -> Path:
    return Path(env["POSTREFRESH_SITE"])


def drained(client: redis.Redis) -> bool:
    return all(client.llen(q) == 0 for q in ("fetch", "write", "scan")) and not client.keys(
        "postrefresh:queued:*")


def test_500_posts_enqueued_are_all_refreshed_with_at_most_12_calls(
        env: dict[str, str], redis_client: redis.Redis, sim: YouTubeSimulator, tmp_path: Path) -> None:
    result = postrefresh(env, "enqueue", "--all")
    assert result.returncode == 0, result.stderr
    assert "queued: 500" in result.stdout
    with celery_worker(env, tmp_path / "worker.log"):
        wait_for(lambda: drained(redis_client), 120, "queues did not drain")
    posts = video_posts(site_of(env))
    assert len(posts) == 500
    for post in posts:
        assert_matches_truth(post)
    assert sim.counters.api_requests <= 12
    log_text = (tmp_path / "worker.log").read_text()
    assert API_KEY not in log_text
    for key in redis_client.keys("*"):
        assert API_KEY.encode() not in key
        kind = redis_client.type(key)
        if kind == b"string":
            assert API_KEY.encode() not in (redis_client.get(key) or b"")
        elif kind == b"list":
            assert all(API_KEY.encode() not in v for v in redis_client.lrange(key, 0, -1))


def test_enqueue_twice_adds_nothing_and_running_twice_writes_once(
        env: dict[str, str], redis_client: redis.Redis, tmp_path: Path) -> None:
    assert "queued: 500" in postrefresh(env, "enqueue", "--all").stdout
    again = postrefresh(env, "enqueue", "--all")
    assert "queued: 0  already queued: 500" in again.stdout
    assert redis_client.llen("fetch") == 10  # one message per 50 posts
    with celery_worker(env, tmp_path / "worker.log"):
        wait_for(lambda: drained(redis_client), 120, "queues did not drain")
        before = {p: p.read_bytes() for p in video_posts(site_of(env))}
        redis_client.flushall()  # forget the cache: the second pass asks the API again
        assert "queued: 500" in postrefresh(env, "enqueue", "--all").stdout
        wait_for(lambda: drained(redis_client), 120, "queues did not drain")
    assert {p: p.read_bytes() for p in before} == before


def test_a_task_with_a_path_outside_the_site_is_refused_and_nothing_is_written(
        env: dict[str, str], redis_client: redis.Redis, tmp_path: Path) -> None:
    victim = tmp_path / "victim.md"
    victim.write_bytes(b'---\nvid_id: "QkqV7TrhN-c"\nviewcount: "1"\n---\n')
    script = ("import tasks.celery; from tasks.jobs import write; "
              "write.delay('../victim.md', 'QkqV7TrhN-c', {'statistics.viewCount': '2'}, 1.0)")
    subprocess.run([str(Path(CELERY).with_name("python")), "-c", script], cwd=ROOT, env=env, check=True)
    with celery_worker(env, tmp_path / "worker.log", queues="write"):
        wait_for(lambda: redis_client.llen("write") == 0 and bool(redis_client.lrange(
            "postrefresh:errors", 0, -1)), 60, "the write task did not run")
    assert victim.read_bytes() == b'---\nvid_id: "QkqV7TrhN-c"\nviewcount: "1"\n---\n'
    errors = [e.decode() for e in redis_client.lrange("postrefresh:errors", 0, -1)]
    assert any("refused" in e and "outside the site" in e for e in errors)


def test_quota_exhausted_pauses_fetching_instead_of_failing_tasks(
        env: dict[str, str], redis_client: redis.Redis, sim: YouTubeSimulator, tmp_path: Path) -> None:
    sim.config = dataclasses.replace(sim.config, quota_units=2)
    postrefresh(env, "enqueue", "--all")
    with celery_worker(env, tmp_path / "worker.log"):
        wait_for(lambda: redis_client.get("postrefresh:paused-until") is not None, 60, "no pause")
        wait_for(lambda: redis_client.llen("fetch") == 0, 60, "fetch queue did not empty into retries")
        calls_when_paused = sim.counters.api_requests
        status = postrefresh(env, "status", "--json")
    assert calls_when_paused <= 2 + 4  # at most one refused call per worker process
    facts = json.loads(status.stdout)
    assert facts["paused_until"] is not None
    refreshed = [p for p in video_posts(site_of(env)) if "refreshed_at" in mapping(p)]
    assert 0 < len(refreshed) <= 100
    for post in video_posts(site_of(env)):
        assert "status" not in mapping(post)


def test_status_shows_queues_quota_and_the_plan(env: dict[str, str], redis_client: redis.Redis) -> None:
    postrefresh(env, "enqueue", "--all")
    result = postrefresh(env, "status", "--json")
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["queues"]["fetch"] == 500
    assert facts["plan"]["due_per_tier"] == {"old": 500}
    assert facts["plan"]["units_needed"] == 10
    text = postrefresh(env, "status").stdout
    assert "queues: fetch 500" in text and "plan:" in text


def test_enqueue_with_redis_down_fails_fast_with_one_clear_line(env: dict[str, str]) -> None:
    from tests.celery_fixtures import free_port

    down = {**env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    before = {p: p.read_bytes() for p in video_posts(site_of(env))}
    result = postrefresh(down, "enqueue", "--all")
    assert result.returncode == 75
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach Redis" in lines[0] and "Traceback" not in result.stderr
    assert {p: p.read_bytes() for p in before} == before


def test_thumbnails_are_fetched_with_the_write_batch_on_the_site_host(
        redis_url: str, redis_client: redis.Redis, sim: YouTubeSimulator, site: Path, tmp_path: Path) -> None:
    config = tmp_path / "thumbs.toml"
    config.write_text(FAST_CONFIG)
    env = celery_env(redis_url, sim, site, config)
    assert "queued: 12" in postrefresh(env, "enqueue", "--all").stdout
    thumbs = site / "assets" / "thumbnails"
    with celery_worker(env, tmp_path / "worker.log", queues="fetch,write"):
        wait_for(lambda: drained(redis_client) and thumbs.is_dir() and len(list(thumbs.glob("*.jpg"))) == 11,
                 60, "thumbnails were not stored")
    for jpg in thumbs.glob("*.jpg"):
        assert jpg.read_bytes().startswith(b"\xff\xd8\xff")
    assert sim.counters.key_to_thumb_host_requests == 0


def test_a_solo_worker_refreshes_a_post_and_closes_its_client_at_exit(
        redis_url: str, redis_client: redis.Redis, sim: YouTubeSimulator, tmp_path: Path) -> None:
    site = tmp_path / "site"
    generate_site(site, 3, seed=7)
    config = tmp_path / "fast.toml"
    config.write_text(FAST_CONFIG + "thumbnails = false\n")
    env = celery_env(redis_url, sim, site, config)
    assert "queued: 3" in postrefresh(env, "enqueue", "--all").stdout
    log = tmp_path / "worker.log"
    with celery_worker(env, log, pool="solo") as proc:
        wait_for(lambda: drained(redis_client), 60, "queues did not drain")
    for post in video_posts(site):
        assert_matches_truth(post)
    # -P solo never sends worker_process_shutdown: the worker's own shutdown closes the client.
    assert f"closed the runtime of worker process {proc.pid}" in log.read_text()


def test_a_threads_worker_refuses_tasks_saying_which_pools_work(
        env: dict[str, str], redis_client: redis.Redis, tmp_path: Path) -> None:
    script = "import tasks.celery; from tasks.jobs import scan; scan.delay()"
    subprocess.run([str(Path(CELERY).with_name("python")), "-c", script], cwd=ROOT, env=env, check=True)
    log = tmp_path / "worker.log"
    with celery_worker(env, log, queues="scan", pool="threads"):
        wait_for(lambda: "ConfigError" in log.read_text(), 60, "the scan task did not fail")
    assert "start it with the prefork pool (the default) or -P solo" in log.read_text()
    assert redis_client.llen("fetch") == 0
