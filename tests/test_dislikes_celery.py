"""Dislikes through the Celery workers: one Redis limiter shared by every worker process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from bench.gen_posts import generate_site
from tests.celery_fixtures import celery_env, celery_worker, postrefresh, redis_client, redis_url, wait_for
from tests.conftest import FAST_CONFIG
from tests.test_celery import drained
from tests.test_run import assert_matches_truth, mapping, video_posts
from worker.shared.keys import METRICS_KEY
from worker.simulator.server import YouTubeSimulator
from worker.simulator.votes import expected_dislikes

__all__ = ["redis_client", "redis_url"]  # fixtures used below
pytestmark = pytest.mark.timeout(180)


def test_workers_share_the_daily_dislike_budget_and_status_shows_who_waits(
        redis_url: str, redis_client: redis.Redis, sim: YouTubeSimulator, tmp_path: Path) -> None:
    site = tmp_path / "site"
    generate_site(site, 40, seed=11)
    config = tmp_path / "fast.toml"
    config.write_text(FAST_CONFIG + f'thumbnails = false\ndislikes = true\ndislikes_url = "{sim.url}"\n'
                      "dislikes_per_day = 10\n")
    env = celery_env(redis_url, sim, site, config)
    assert "queued: 40" in postrefresh(env, "enqueue", "--all").stdout
    with celery_worker(env, tmp_path / "worker.log"):
        wait_for(lambda: drained(redis_client), 120, "queues did not drain")
    posts = video_posts(site)
    with_dislikes = [p for p in posts
                     if mapping(p).get("dislikeCount") == str(expected_dislikes(str(mapping(p)["vid_id"])))]
    assert len(with_dislikes) == 10 and sim.counters.votes_requests == 10
    for post in posts:
        assert_matches_truth(post)  # the stats are written either way
    facts = json.loads(postrefresh(env, "status", "--json").stdout)["dislikes"]
    assert (facts["used_today"], facts["per_day"]) == (10, 10)
    assert facts["today"] == {"fetched": 10, "waiting": 30}
    assert "30 wait for tomorrow's limit" in postrefresh(env, "status").stdout
    counters = {k.decode(): int(v) for k, v in redis_client.hgetall(METRICS_KEY).items()}
    assert counters["posts:refreshed"] == 40
    assert (counters["dislike_calls"], counters["dislikes_waiting"]) == (10, 30)
    assert counters["api_calls"] == sim.counters.api_requests == counters["quota_units"]
