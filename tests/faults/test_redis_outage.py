"""Redis killed and restarted mid-run: workers reconnect, nothing is written half, and a new
enqueue (or the next beat scan) finishes the job; `postrefresh run` never needs Redis."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from bench.gen_posts import generate_site
from tests.celery_fixtures import celery_env, celery_worker, free_port, postrefresh, start_redis, wait_for
from tests.conftest import FAST_CONFIG
from tests.test_run import assert_matches_truth, mapping, video_posts
from worker.simulator import YouTubeSimulator

pytestmark = pytest.mark.timeout(240)


def test_redis_killed_mid_run_then_restarted_loses_and_garbles_nothing(
        sim: YouTubeSimulator, tmp_path: Path) -> None:
    port = free_port()
    site = tmp_path / "site"
    generate_site(site, 300, seed=13)
    config = tmp_path / "outage.toml"
    config.write_text(FAST_CONFIG + "thumbnails = false\nvisibility_timeout = 20\n")
    env = celery_env(f"redis://127.0.0.1:{port}/0", sim, site, config)
    redis_proc = start_redis(port, tmp_path)
    try:
        assert "queued: 300" in postrefresh(env, "enqueue", "--all").stdout
        with celery_worker(env, tmp_path / "worker.log", queues="fetch,write", concurrency=2):
            wait_for(lambda: sum("refreshed_at" in mapping(p) for p in video_posts(site)) >= 50, 60,
                     "no progress before the outage")
            redis_proc.send_signal(signal.SIGKILL)
            redis_proc.wait(10)
            down = postrefresh(env, "enqueue", "--all")
            assert down.returncode == 75 and "cannot reach Redis" in down.stderr
            redis_proc = start_redis(port, tmp_path)  # empty: the queue was in memory only
            assert "queued: 300" in postrefresh(env, "enqueue", "--all").stdout
            wait_for(lambda: all("refreshed_at" in mapping(p) for p in video_posts(site)), 120,
                     "the worker did not reconnect and finish")
    finally:
        redis_proc.kill()
        redis_proc.wait(10)
    assert not list(site.rglob(".postrefresh-*.tmp"))
    for post in video_posts(site):
        assert_matches_truth(post)
        assert len(mapping(post)["history"]) == 1  # type: ignore[arg-type]
