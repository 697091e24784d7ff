"""Real parts for the Celery tests: a private redis-server and celery worker processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.simulator_fixtures import API_KEY
from worker.simulator.server import YouTubeSimulator

ROOT = Path(__file__).resolve().parents[1]
CELERY = str(Path(sys.executable).with_name("celery"))
POSTREFRESH = str(Path(sys.executable).with_name("postrefresh"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    """A redis-server on 127.0.0.1:`port` that keeps nothing on disk, answering when returned."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed: run scripts/test, which installs it")
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    try:
        wait_for(lambda: _pings(client), 10, "redis-server did not start")
    finally:
        client.close()
    return proc


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on a free port for the whole session (never the shared 6379)."""
    port = free_port()
    proc = start_redis(port, tmp_path_factory.mktemp("redis"))
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the private Redis, emptied before each test."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    yield client
    client.close()


def celery_env(redis_url: str, sim: YouTubeSimulator, site: Path, config: Path) -> dict[str, str]:
    """The environment a worker, beat or enqueue gets: everything from env vars, like compose."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTREFRESH", "YOUTUBE", "CELERY"))}
    env.update({
        "REDIS_URL": redis_url,
        "POSTREFRESH_SITE": str(site),
        "POSTREFRESH_CONFIG": str(config),
        "YOUTUBE_API_KEY": API_KEY,
        "YOUTUBE_API_URL": f"{sim.url}/youtube/v3",
        "YOUTUBE_THUMBNAIL_URL": sim.url,
        "PYTHONPATH": str(ROOT),
    })
    return env


@contextmanager
def celery_worker(env: dict[str, str], log: Path, queues: str = "fetch,write,scan",
                  concurrency: int = 4, name: str = "w1", pool: str = "prefork"
                  ) -> Iterator[subprocess.Popen[bytes]]:
    """A real `celery -A tasks worker` process (in its own process group, so a test can
    kill -9 the worker and its pool at once), stopped with a warm shutdown at the end."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [CELERY, "-A", "tasks", "worker", "-Q", queues, "-c", str(concurrency), "-P", pool,
             "-n", f"{name}@%h",
             "-E", "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: _answers_ping(env, name), 30, f"worker {name} did not start; see {log}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                kill_group(proc)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """kill -9 a worker and every process of its pool, as a crash would."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def _answers_ping(env: dict[str, str], name: str) -> bool:
    result = subprocess.run([CELERY, "-A", "tasks", "inspect", "ping", "-d", f"{name}@{socket.gethostname()}",
                             "--timeout", "1"], cwd=ROOT, env=env, capture_output=True)
    return result.returncode == 0


def wait_for(condition: Callable[[], bool], seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(message)


def postrefresh(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real `postrefresh` command with `env`."""
    return subprocess.run([POSTREFRESH, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
