"""The Celery path in batches, with real parts: one message per 50 videos, calls ≈ ceil(ids / 50)
whatever the concurrency, and the per-post messages an earlier version queued still run."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import redis

from bench.gen_posts import generate_site
from tasks.runtime import Runtime
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
from tests.test_celery import drained
from tests.test_run import assert_matches_truth, mapping, video_posts
from worker.outputs.scan_and_fetch import fetch_or_give_up
from worker.settings import Settings
from worker.shared.enqueue import batches, enqueue_posts
from worker.shared.keys import queued_key
from worker.shared.steps import resume_countdown, retry_countdown
from worker.simulator.server import YouTubeSimulator
from worker.simulator.truth import expected_fields

__all__ = ["redis_client", "redis_url"]  # fixtures used below
pytestmark = pytest.mark.timeout(180)
PYTHON = str(Path(CELERY).with_name("python"))


def fast_env(redis_url: str, sim: YouTubeSimulator, site: Path, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "fast.toml"
    config.write_text(FAST_CONFIG + "thumbnails = false\n")
    return celery_env(redis_url, sim, site, config)


def send(env: dict[str, str], name: str, *calls: tuple[object, ...]) -> None:
    """Publish task messages by name, as a process of an earlier version would have."""
    script = ("import sys, json; from tasks.celery import app\n"
              "for args in json.loads(sys.argv[2]): app.send_task(sys.argv[1], args)")
    subprocess.run([PYTHON, "-c", script, name, json.dumps(calls)], cwd=ROOT, env=env, check=True, timeout=60)


def test_batches_hold_at_most_the_given_number_of_distinct_videos_and_keep_every_post() -> None:
    posts = [(f"p{i}", f"v{i // 2}") for i in range(9)]  # two posts per video, the last alone
    groups = list(batches(posts, 2))
    assert [len({vid for _, vid in g}) for g in groups] == [2, 2, 1]
    assert [p for g in groups for p in g] == posts


@pytest.mark.parametrize("concurrency", [4, 8])
def test_eleven_per_post_fetch_messages_running_at_once_cost_one_call(
        concurrency: int, redis_url: str, redis_client: redis.Redis, sim: YouTubeSimulator, site: Path,
        tmp_path: Path) -> None:
    # The defect: tasks starting at the same instant each claimed their own id before one window
    # popped the pending set, so 11 ids cost up to 4 calls with -c 8. The window is claimed in
    # one atomic step now; old-format messages, one per post, are the harshest case.
    env = fast_env(redis_url, sim, site, tmp_path)
    posts = [(p.relative_to(site).as_posix(), str(mapping(p)["vid_id"])) for p in video_posts(site)]
    ids = {vid for _, vid in posts}
    assert len(ids) == 11 < len(posts)
    with celery_worker(env, tmp_path / "worker.log", queues="fetch,write", concurrency=concurrency):
        for round_ in range(3):
            redis_client.flushall()
            redis_client.zadd("postrefresh:pending", {vid: 0 for vid in ids})  # as enqueue marks them
            send(env, "postrefresh.fetch", *posts)
            wait_for(lambda: drained(redis_client) and redis_client.llen("fetch") == 0
                     and redis_client.hlen("unacked") == 0, 60, "queues did not drain")
            assert int(redis_client.hget("postrefresh:metrics", "api_calls") or 0) == 1, f"round {round_}"
    assert sim.counters.api_requests == 3
    for post in video_posts(site):
        assert_matches_truth(post)


@pytest.mark.parametrize("concurrency", [4, 8])
def test_enqueued_posts_cost_ceil_ids_over_50_calls_and_one_message_per_50(
        concurrency: int, redis_url: str, redis_client: redis.Redis, sim: YouTubeSimulator,
        tmp_path: Path) -> None:
    site = tmp_path / "site"
    generate_site(site, 230, seed=5)
    env = fast_env(redis_url, sim, site, tmp_path)
    ids = {str(mapping(p)["vid_id"]) for p in video_posts(site)}
    assert "queued: 230 " in postrefresh(env, "enqueue", "--all").stdout
    assert redis_client.llen("fetch") == math.ceil(len(ids) / 50)
    with celery_worker(env, tmp_path / "worker.log", queues="fetch,write", concurrency=concurrency):
        wait_for(lambda: drained(redis_client), 120, "queues did not drain")
    assert sim.counters.api_requests == math.ceil(len(ids) / 50)
    for post in video_posts(site):
        assert_matches_truth(post)
    log = (tmp_path / "worker.log").read_text()
    assert "postrefresh.write_batch" in log and "postrefresh.write[" not in log


def test_per_post_write_fetch_and_thumbnail_messages_of_an_earlier_version_are_still_done(
        redis_url: str, redis_client: redis.Redis, sim: YouTubeSimulator, site: Path, tmp_path: Path) -> None:
    env = fast_env(redis_url, sim, site, tmp_path)
    first, second, *_ = sorted(video_posts(site))
    path, vid = first.relative_to(site).as_posix(), str(mapping(first)["vid_id"])
    send(env, "postrefresh.write", (path, vid, expected_fields(vid, 0), 1_700_000_000.0))
    send(env, "postrefresh.fetch", (second.relative_to(site).as_posix(), str(mapping(second)["vid_id"])))
    send(env, "postrefresh.thumbnail", (vid,))
    jpg = site / "assets" / "thumbnails" / f"{vid}.jpg"
    with celery_worker(env, tmp_path / "worker.log", queues="fetch,write"):
        wait_for(lambda: drained(redis_client) and "refreshed_at" in mapping(first)
                 and "refreshed_at" in mapping(second) and jpg.exists(), 60, "the old messages were not done")
    assert_matches_truth(first)
    assert_matches_truth(second)
    assert jpg.read_bytes().startswith(b"\xff\xd8\xff")
    log = (tmp_path / "worker.log").read_text()
    assert all(f"Task postrefresh.{name}[" in log for name in ("write", "fetch", "thumbnail"))


def test_a_write_batch_refuses_its_bad_posts_with_one_line_each_and_writes_the_rest(
        redis_url: str, redis_client: redis.Redis, sim: YouTubeSimulator, site: Path, tmp_path: Path) -> None:
    env = fast_env(redis_url, sim, site, tmp_path)
    victim = tmp_path / "victim.md"
    victim.write_bytes(b'---\nvid_id: "QkqV7TrhN-c"\nviewcount: "1"\n---\n')
    posts = sorted(video_posts(site))[:3]
    answers = [[p.relative_to(site).as_posix(), str(mapping(p)["vid_id"]),
                expected_fields(str(mapping(p)["vid_id"]), 0), 1_700_000_000.0] for p in posts]
    answers.insert(1, ["../victim.md", "QkqV7TrhN-c", {"statistics.viewCount": "2"}, 1_700_000_000.0])
    send(env, "postrefresh.write_batch", (answers, []))
    with celery_worker(env, tmp_path / "worker.log", queues="write"):
        wait_for(lambda: redis_client.llen("write") == 0 and all("refreshed_at" in mapping(p) for p in posts),
                 60, "the batch was not written")
    assert victim.read_bytes() == b'---\nvid_id: "QkqV7TrhN-c"\nviewcount: "1"\n---\n'
    for post in posts:
        assert_matches_truth(post)
    errors = [e.decode() for e in redis_client.lrange("postrefresh:errors", 0, -1)]
    assert len(errors) == 1 and "../victim.md: refused" in errors[0] and "outside the site" in errors[0]


def test_a_fetch_with_a_rejected_key_gives_up_on_its_posts_and_one_with_a_bad_id_is_refused(
        redis_url: str, redis_client: redis.Redis, sim: YouTubeSimulator, site: Path) -> None:
    settings = Settings().with_values(site=site, redis_url=redis_url, api_key="not-a-key",
                                      api_url=f"{sim.url}/youtube/v3", thumbnails=False)
    runtime = Runtime(settings)
    sent: list[object] = []
    try:
        enqueue_posts(redis_client, [("_posts/a.md", "QkqV7TrhN-c")], lambda posts: None,
                      visibility_timeout=settings.queue.visibility_timeout)
        runtime.run(fetch_or_give_up(runtime, [("_posts/a.md", "QkqV7TrhN-c"), ("_posts/b.md", "nope")],
                                     send_writes=lambda *message: sent.append(message), last_try=False))
    finally:
        runtime.close()
    errors = [e.decode().split(" ", 1)[1] for e in redis_client.lrange("postrefresh:errors", 0, -1)]
    assert sent == [] and redis_client.get(queued_key("_posts/a.md")) is None  # the next scan queues it
    assert any(e.startswith("_posts/a.md: the YouTube API refused the key") for e in errors)
    assert "_posts/b.md: refused a fetch task with a bad vid_id" in errors


def test_a_retry_waits_twice_as_long_each_time_and_never_past_half_the_visibility_timeout() -> None:
    settings = Settings().with_values(visibility_timeout=1_000)
    assert [retry_countdown(settings, n) for n in range(5)] == [60, 120, 240, 480, 500]
    assert resume_countdown(settings, 100.0, 99.9) == 1 and resume_countdown(settings, 10_000.0, 0.0) == 500
