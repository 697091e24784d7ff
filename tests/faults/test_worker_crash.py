"""kill -9 of the fetch and write workers mid-run: after a restart every post ends exactly
as a clean run leaves it; nothing truncated, doubled, lost, or left as a temp file."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest
import redis

from bench.gen_posts import generate_site
from tests.celery_fixtures import (
    celery_env,
    celery_worker,
    kill_group,
    postrefresh,
    redis_client,
    redis_url,
    wait_for,
)
from tests.conftest import FAST_CONFIG
from tests.test_run import assert_matches_truth, mapping, video_posts
from worker.simulator.server import YouTubeSimulator

__all__ = ["redis_client", "redis_url"]
pytestmark = pytest.mark.timeout(300)
POSTS = 300


def refreshed(site: Path) -> int:
    return sum("refreshed_at" in mapping(p) for p in video_posts(site))


def wait_until_calls(sim: YouTubeSimulator, calls: int) -> None:
    wait_for(lambda: sim.counters.api_requests >= calls, 60, "no API call")


def wait_until_refreshed(site: Path, posts: int) -> None:
    wait_for(lambda: refreshed(site) >= posts, 90, "writes did not progress")


def drained(client: redis.Redis) -> bool:
    return all(client.llen(q) == 0 for q in ("fetch", "write")) and not client.hlen("unacked")


@pytest.mark.parametrize("kill_when", ["fetching", "writing"])
def test_kill_9_mid_run_then_restart_ends_every_post_right_once(
        kill_when: str, redis_url: str, redis_client: redis.Redis, sim: YouTubeSimulator,
        tmp_path: Path) -> None:
    site = tmp_path / "site"
    generate_site(site, POSTS, seed=11)
    config = tmp_path / "crash.toml"
    config.write_text(FAST_CONFIG + "thumbnails = false\nvisibility_timeout = 20\n")
    env = celery_env(redis_url, sim, site, config)
    assert "queued: 300" in postrefresh(env, "enqueue", "--all").stdout
    rng = random.Random(kill_when)
    for round_ in range(3):
        with celery_worker(env, tmp_path / f"worker{round_}.log", queues="fetch,write",
                           concurrency=2) as worker:
            if kill_when == "fetching":
                wait_until_calls(sim, round_ + 1)
            else:
                wait_until_refreshed(site, (round_ + 1) * POSTS // 5)
                time.sleep(rng.uniform(0, 0.3))  # somewhere inside the next writes
            kill_group(worker)
    with celery_worker(env, tmp_path / "final.log", queues="fetch,write", concurrency=2):
        wait_for(lambda: drained(redis_client), 150, "the queues did not drain after the restarts")
        if refreshed(site) < POSTS:
            # kombu's Redis transport can lose a message popped by a worker killed before it
            # recorded it as unacked; the post's dedupe key then expires and the next scan
            # (here: an enqueue) queues it again.
            missing = [str(p) for p in video_posts(site) if "refreshed_at" not in mapping(p)]
            # "queued: N" at the start of the line: "already queued: N" means the key is still alive.
            queued = re.compile(rf"(?m)^queued: {len(missing)} ")
            wait_for(lambda: queued.search(postrefresh(env, "enqueue", *missing).stdout) is not None,
                     90, "the lost post's dedupe key did not expire")
            wait_for(lambda: drained(redis_client), 60, "the re-queued posts were not written")
        assert refreshed(site) == POSTS
    assert not list(site.rglob(".postrefresh-*.tmp"))
    for post in video_posts(site):
        assert_matches_truth(post)
        data = post.read_bytes()
        assert data.endswith(b"{% endraw %}\r\n") and data.count(b"\r\n---\r\n") == 1
        assert len(mapping(post)["history"]) == 1  # type: ignore[arg-type]
