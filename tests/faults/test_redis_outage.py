"""Redis killed and restarted mid-run: workers reconnect (or are restarted by their supervisor,
as compose's `restart: unless-stopped` does), nothing is written half, and a new enqueue (or
the next beat scan) finishes the job; `postrefresh run` never needs Redis."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.gen_posts import generate_site
from tests.celery_fixtures import celery_env, celery_worker, free_port, postrefresh, start_redis, wait_for
from tests.conftest import FAST_CONFIG
from tests.test_run import assert_matches_truth, mapping, video_posts
from worker.simulator.server import YouTubeSimulator

pytestmark = pytest.mark.timeout(240)


class Supervisor:
    """Keeps one worker running, restarting it if it exits, and counts the restarts."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.restarts = env, log, 0
        self.stack = contextlib.ExitStack()
        self.worker: subprocess.Popen[bytes] = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        worker = celery_worker(self.env, self.log, queues="fetch,write", concurrency=2)
        return self.stack.enter_context(worker)

    def ensure_running(self) -> None:
        if self.worker.poll() is not None:
            self.restarts += 1
            self.worker = self._start()


@contextlib.contextmanager
def supervised(env: dict[str, str], log: Path) -> Iterator[Supervisor]:
    supervisor = Supervisor(env, log)
    with supervisor.stack:
        yield supervisor


def all_refreshed(site: Path, supervisor: Supervisor) -> bool:
    supervisor.ensure_running()
    return all("refreshed_at" in mapping(p) for p in video_posts(site))


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
        with supervised(env, tmp_path / "worker.log") as supervisor:
            wait_for(lambda: sum("refreshed_at" in mapping(p) for p in video_posts(site)) >= 50, 60,
                     "no progress before the outage")
            redis_proc.send_signal(signal.SIGKILL)
            redis_proc.wait(10)
            down = postrefresh(env, "enqueue", "--all")
            assert down.returncode == 75 and "cannot reach Redis" in down.stderr
            redis_proc = start_redis(port, tmp_path)  # empty: the queue was in memory only
            assert "queued: 300" in postrefresh(env, "enqueue", "--all").stdout
            wait_for(lambda: all_refreshed(site, supervisor), 120, "the worker did not finish")
            # Celery 5.7 sometimes exits on the lost connection (kombu's close path raises
            # AttributeError); the supervisor's restart is then what brings it back.
            assert supervisor.restarts <= 1
    finally:
        redis_proc.kill()
        redis_proc.wait(10)
    assert not list(site.rglob(".postrefresh-*.tmp"))
    for post in video_posts(site):
        assert_matches_truth(post)
        assert len(mapping(post)["history"]) == 1  # type: ignore[arg-type]
