"""Flower started on a host the way the README says (`celery -A tasks flower`), for real:
it never serves a page without authentication and listens on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.celery_fixtures import CELERY, ROOT, free_port, redis_url, wait_for

__all__ = ["redis_url"]  # fixture used below
pytestmark = pytest.mark.timeout(120)
AUTH = ("operator", "s3cret-flower")
PAGES = ("/", "/tasks", "/workers", "/broker", "/api/workers", "/api/tasks")


def flower_env(redis_url: str, **extra: str) -> dict[str, str]:
    """An operator's shell: Redis in REDIS_URL and no FLOWER_* setting unless given."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("POSTREFRESH", "YOUTUBE", "CELERY", "FLOWER", "REDIS"))}
    return {**env, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT), **extra}


@contextmanager
def flower(env: dict[str, str], folder: Path, *args: str) -> Iterator[int]:
    """`celery -A tasks flower --port=P ARGS` from `folder`, answering when the port is yielded."""
    port = free_port()
    log = folder / "flower.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([CELERY, "-A", "tasks", "flower", f"--port={port}", *args], cwd=folder,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: proc.poll() is not None or answers(port), 60,
                 f"flower did not start; see {log}")
        assert proc.poll() is None, log.read_text()
        yield port
    finally:
        proc.terminate()
        proc.wait(20)


def answers(port: int) -> bool:
    """Whether something answers Flower's health check on `port`, on any loopback address."""
    return any(_healthy(address, port) for address in ("127.0.0.1", "127.0.0.2"))


def _healthy(address: str, port: int) -> bool:
    try:
        return httpx.get(f"http://{address}:{port}/healthcheck", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on `port` (read from /proc/net/tcp*)."""
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:
                raw = b"".join(bytes.fromhex(address[i:i + 8])[::-1] for i in range(0, len(address), 8))
                found.add(socket.inet_ntop(family, raw))
    return found


@pytest.mark.parametrize(("setting", "said"), [
    ({}, "without authentication"),
    ({"FLOWER_UNAUTHENTICATED_API": "true"}, "without authentication"),
    ({"FLOWER_BASIC_AUTH": ""}, "without authentication"),
    ({"FLOWER_BASIC_AUTH": "operator:"}, "no password: operator"),
    # Flower would let `guest` in with an empty password, and anyone in as ":" (no user, none)
    ({"FLOWER_BASIC_AUTH": "operator:s3cret,guest:"}, "no password: guest"),
    ({"FLOWER_BASIC_AUTH": "operator:s3cret,:"}, "no password: (no user)"),
], ids=["nothing", "unauthenticated-api", "empty-basic-auth", "no-password", "one-weak-entry",
        "empty-login"])
def test_flower_without_authentication_refuses_to_start_with_one_line(
        redis_url: str, tmp_path: Path, setting: dict[str, str], said: str) -> None:
    port = free_port()
    proc = subprocess.run([CELERY, "-A", "tasks", "flower", f"--port={port}"], cwd=tmp_path,
                          env=flower_env(redis_url, **setting), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Flower refuses to start" in lines[0] and "FLOWER_BASIC_AUTH" in lines[0]
    assert said in lines[0]


def test_flower_with_basic_auth_asks_for_it_on_every_page_and_listens_on_loopback_only(
        redis_url: str, tmp_path: Path) -> None:
    env = flower_env(redis_url, FLOWER_BASIC_AUTH=":".join(AUTH))
    with flower(env, tmp_path) as port:
        assert listening_addresses(port) == {"127.0.0.1"}
        for page in PAGES:
            url = f"http://127.0.0.1:{port}{page}"
            assert httpx.get(url, timeout=10).status_code == 401, page
            assert httpx.get(url, auth=("operator", "wrong"), timeout=10).status_code == 401, page
            assert httpx.get(url, auth=AUTH, timeout=10).status_code == 200, page
        metrics = f"http://127.0.0.1:{port}/metrics"  # Flower leaves it open; we do not
        assert httpx.get(metrics, timeout=10).status_code == 401
        scraped = httpx.get(metrics, auth=AUTH, timeout=10)
        assert scraped.status_code == 200 and "flower_events_total" in scraped.text
        assert httpx.get(f"http://127.0.0.1:{port}/healthcheck", timeout=10).text == "OK"  # probes


@pytest.mark.parametrize("told", ["flag", "env"])
def test_flower_listens_where_address_or_flower_address_says(
        redis_url: str, tmp_path: Path, told: str) -> None:
    args = ("--address=127.0.0.2",) if told == "flag" else ()
    env = flower_env(redis_url) if told == "flag" else flower_env(redis_url, FLOWER_ADDRESS="127.0.0.2")
    with flower(env, tmp_path, *args, f"--basic-auth={':'.join(AUTH)}") as port:
        assert listening_addresses(port) == {"127.0.0.2"}
        assert httpx.get(f"http://127.0.0.2:{port}/tasks", timeout=10).status_code == 401
        assert httpx.get(f"http://127.0.0.2:{port}/tasks", auth=AUTH, timeout=10).status_code == 200
