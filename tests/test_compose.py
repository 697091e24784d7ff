"""docker-compose.yml: its shape, `docker-compose config`, and every service's command run locally."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from tests.celery_fixtures import (
    CELERY,
    ROOT,
    celery_env,
    free_port,
    redis_client,
    redis_url,
    wait_for,
)
from tests.conftest import FAST_CONFIG
from tests.simulator_fixtures import API_KEY
from worker.settings import ENV_VARS
from worker.simulator import YouTubeSimulator

__all__ = ["redis_client", "redis_url"]  # fixtures used below
pytestmark = pytest.mark.timeout(120)

COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "config" / "env.example"
APP_SERVICES = ("fetch", "write", "scan", "beat", "flower")
FLOWER_AUTH = ("operator", "compose-test-pw")
# What the local run points elsewhere: the test's Redis, site copy, settings and simulator.
LOCAL_OVERRIDES = ("REDIS_URL", "POSTREFRESH_SITE", "POSTREFRESH_CONFIG",
                   "YOUTUBE_API_KEY", "YOUTUBE_API_URL", "YOUTUBE_THUMBNAIL_URL")


def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def test_compose_file_declares_redis_workers_beat_flower_and_a_demo_simulator() -> None:
    s = services()
    assert set(s) == {"redis", *APP_SERVICES, "simulator"}
    assert s["redis"]["image"] == "redis:7"
    assert s["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert s["simulator"]["profiles"] == ["demo"]
    assert "--key demo-key" in s["simulator"]["command"]
    for name in APP_SERVICES:
        assert s[name]["env_file"] == ".env", name
        assert s[name]["depends_on"] == {"redis": {"condition": "service_healthy"}}, name
    for name in ("fetch", "write", "scan"):
        assert " -E " in s[name]["command"], f"{name} must send task events for Flower"
    assert "-Q fetch -c 8" in s["fetch"]["command"]
    assert "-Q write -c 1" in s["write"]["command"]
    assert s["write"]["environment"]["POSTREFRESH_SITE"] == "/site"
    assert any(v.endswith(":/site") for v in s["write"]["volumes"])


def test_compose_publishes_ports_on_loopback_only_and_runs_exactly_one_beat() -> None:
    s = services()
    for name, service in s.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    assert s["flower"]["ports"] == ["127.0.0.1:5555:5555"]
    beats = [name for name, service in s.items() if " beat" in str(service.get("command", ""))]
    assert beats == ["beat"]
    assert s["beat"].get("deploy", {}).get("replicas", 1) == 1


def test_flower_auth_is_required_by_compose_interpolation() -> None:
    auth = services()["flower"]["environment"]["FLOWER_BASIC_AUTH"]
    assert re.fullmatch(r"\$\{FLOWER_BASIC_AUTH:\?[^}]+\}", auth), auth


def test_env_example_documents_every_env_var_and_compose_variable() -> None:
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.M))
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text()))
    assert {*ENV_VARS, "FLOWER_BASIC_AUTH", *used} <= documented
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def compose_config(project: Path, flower_auth: str) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with config/env.example as the .env, in a scratch project dir."""
    client = shutil.which("docker-compose")
    if client is None:
        pytest.fail("docker-compose is not installed: run scripts/test, which installs it "
                    "(apt-get install docker-compose)")
    env_file = project / ".env"
    env_file.write_text(re.sub(r"(?m)^FLOWER_BASIC_AUTH=.*$", f"FLOWER_BASIC_AUTH={flower_auth}",
                               ENV_EXAMPLE.read_text()))
    # A bare environment: nothing from the caller's shell (say, their own FLOWER_BASIC_AUTH) leaks in.
    return subprocess.run(
        [client, "-f", str(COMPOSE), "--project-directory", str(project), "--env-file", str(env_file),
         "config"], env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(project)},
        capture_output=True, text=True, timeout=60)


def test_compose_config_accepts_the_file_when_flower_auth_is_set(tmp_path: Path) -> None:
    result = compose_config(tmp_path, ":".join(FLOWER_AUTH))
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    assert resolved["flower"]["environment"]["FLOWER_BASIC_AUTH"] == ":".join(FLOWER_AUTH)


def test_compose_config_refuses_without_flower_auth(tmp_path: Path) -> None:
    result = compose_config(tmp_path, "")
    assert result.returncode != 0
    assert "set FLOWER_BASIC_AUTH=user:password in .env" in result.stderr


@contextmanager
def started(commands: dict[str, list[str]], env: dict[str, str], folder: Path) -> Iterator[None]:
    """Run each command as a local process; terminate (then kill) them all at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, argv in commands.items():
            with open(folder / f"{name}.log", "wb") as log:
                # Own process group: a kill reaches the worker's pool processes too.
                procs.append(subprocess.Popen(argv, cwd=folder, env=env, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True))
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def flower_get(port: int, path: str, auth: tuple[str, str] | None = FLOWER_AUTH) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", auth=auth, timeout=10)


def flower_up(port: int) -> bool:
    try:
        return flower_get(port, "/api/tasks").status_code == 200
    except httpx.TransportError:
        return False


def task_names(port: int) -> set[str]:
    return {t.get("name") for t in flower_get(port, "/api/tasks").json().values()}


def workers_answer_ping(env: dict[str, str]) -> bool:
    result = subprocess.run([CELERY, "-A", "tasks", "inspect", "ping", "--timeout", "1"], cwd=ROOT,
                            env=env, capture_output=True, text=True)
    return all(f"{name}@" in result.stdout for name in ("fetch", "write", "scan"))


def test_each_service_command_runs_beat_scans_and_flower_shows_tasks_without_the_key(
        redis_url: str, redis_client: redis.Redis, sim: YouTubeSimulator, site: Path,
        tmp_path: Path) -> None:
    resolved = compose_config(tmp_path, ":".join(FLOWER_AUTH))
    assert resolved.returncode == 0, resolved.stderr
    compose = yaml.safe_load(resolved.stdout)["services"]
    config = tmp_path / "fast.toml"
    config.write_text(FAST_CONFIG + 'scan_every = "2s"\nthumbnails = false\n')
    local = celery_env(redis_url, sim, site, config)
    env = {**local, **compose["flower"]["environment"], **{k: local[k] for k in LOCAL_OVERRIDES}}
    port = free_port()
    commands = {name: [CELERY, *shlex.split(compose[name]["command"])[1:]] for name in APP_SERVICES}
    commands["flower"] += [f"--port={port}", "--address=127.0.0.1"]  # the last --port wins
    assert all(compose[name]["command"].startswith("celery -A tasks ") for name in APP_SERVICES)

    with started(commands, env, tmp_path):
        wait_for(lambda: flower_up(port), 30, "flower did not answer; see flower.log")
        assert flower_get(port, "/api/tasks", auth=None).status_code == 401
        assert flower_get(port, "/api/tasks", auth=("operator", "wrong")).status_code == 401
        wait_for(lambda: workers_answer_ping(env), 30, "a worker did not answer ping; see *.log")
        # Beat sends postrefresh.scan every 2 s; the scan queues fetches, fetches queue writes.
        wait_for(lambda: {"postrefresh.scan", "postrefresh.fetch", "postrefresh.write"}
                 <= task_names(port), 30, "beat's scan did not reach fetch and write tasks")
        tasks_json = flower_get(port, "/api/tasks").text
        workers = flower_get(port, "/api/workers?refresh=1")  # inspect: stats, conf, queues

    assert workers.status_code == 200
    assert {"fetch@", "write@", "scan@"} <= {w.split("@")[0] + "@" for w in workers.json()}
    fetch_args = [t["args"] for t in json.loads(tasks_json).values()
                  if t.get("name") == "postrefresh.fetch"]
    assert any("_posts/2022-04-13-kremlin-admits-significant-losses.md" in a and "QkqV7TrhN-c" in a
               for a in fetch_args), fetch_args
    logs = [p.read_text(errors="replace") for p in tmp_path.glob("*.log")]
    for text in (tasks_json, workers.text, *logs):
        assert API_KEY not in text
    assert "refreshed_at" in (site / "_posts/2022-04-13-kremlin-admits-significant-losses.md").read_text()
