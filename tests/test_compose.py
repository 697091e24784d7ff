"""docker-compose.yml: its shape, `docker-compose config`, and the demo stack started for real in Docker."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.celery_fixtures import ROOT
from tests.compose_fixtures import (
    COMPOSE,
    ENV_EXAMPLE,
    FLOWER_AUTH,
    Stack,
    bare_env,
    docker,
    docker_compose,
    project_folder,
    stack,
)
from tests.conftest import SEEDS
from worker.settings import ENV_VARS
from worker.simulator.truth import video_truth

__all__ = ["docker", "stack"]  # fixtures used below
pytestmark = pytest.mark.timeout(120)

APP_SERVICES = ("fetch", "write", "scan", "beat", "flower")
ALL_SERVICES = ("redis", *APP_SERVICES, "simulator")
DEMO_KEY = "demo-key"  # the key config/env.example sets and the demo simulator accepts
# Cold (no cached root file system, no images): about 3 min of debootstrap, 1 min of image
# build and 1 min of stack on this 2-core machine; the limit leaves room for a loaded machine.
STACK_TIMEOUT = 1200


def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def test_compose_file_declares_redis_workers_beat_flower_and_a_demo_simulator() -> None:
    s = services()
    assert set(s) == set(ALL_SERVICES)
    assert s["redis"]["image"] == "redis:7"
    assert s["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert s["simulator"]["profiles"] == ["demo"]
    assert f"--key {DEMO_KEY}" in s["simulator"]["command"]
    for name in APP_SERVICES:
        assert s[name]["env_file"] == ".env", name
        assert s[name]["depends_on"] == {"redis": {"condition": "service_healthy"}}, name
        assert any(v.endswith(":/config/postrefresh.toml:ro") for v in s[name]["volumes"]), name
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
    assert s["flower"]["ports"] == ["127.0.0.1:${HOST_FLOWER_PORT:-5555}:5555"]
    assert "--address=0.0.0.0 --port=5555" in s["flower"]["command"]
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



def compose_config(folder: Path, flower_auth: str) -> subprocess.CompletedProcess[str]:
    project = project_folder(folder, flower_auth)
    return subprocess.run([docker_compose(), "config"], cwd=project, env=bare_env(project),
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


# --- The demo stack, for real -------------------------------------------------------------

def assert_every_service_runs_without_restarts(stack: Stack) -> None:
    assert stack.states() == dict.fromkeys(ALL_SERVICES, ("running", 0)), stack.failure("not all up")


@pytest.mark.timeout(STACK_TIMEOUT)
def test_every_service_of_the_demo_stack_stays_up(stack: Stack) -> None:
    assert_every_service_runs_without_restarts(stack)


@pytest.mark.timeout(STACK_TIMEOUT)
def test_flower_in_the_stack_answers_401_without_credentials_and_lists_the_workers_with_them(
        stack: Stack) -> None:
    for path in ("/", "/workers", "/tasks", "/broker", "/api/workers", "/api/tasks"):
        assert stack.flower(path, auth=None).status_code == 401, path
    assert stack.flower("/workers", auth=(FLOWER_AUTH[0], "wrong")).status_code == 401
    page = stack.flower("/workers")
    assert page.status_code == 200
    assert all(f"{name}@" in page.text for name in ("fetch", "write", "scan")), page.text[-2000:]
    assert {"fetch", "write", "scan"} <= stack.flower_workers()


FRONT_MATTER = re.compile(r"\A---\r?\n(.*?)\r?\n---\r?\n", re.S)


def front_matter(data: bytes) -> dict[str, Any]:
    match = FRONT_MATTER.match(data.decode("utf-8-sig"))
    assert match is not None, data[:200]
    return dict(yaml.safe_load(match.group(1)))


def seed_posts() -> dict[str, bytes]:
    return {p.relative_to(SEEDS).as_posix(): p.read_bytes()
            for p in sorted((SEEDS / "_posts").rglob("*")) if p.is_file()}


def all_refreshed(posts: dict[str, bytes], videos: list[str]) -> bool:
    """Every video post has refreshed_at and the view count the simulator serves for its id."""
    values = [front_matter(posts[p]) for p in videos]
    return all("refreshed_at" in v and str(v["viewcount"]) == video_truth(v["vid_id"], 0)["statistics"]
               ["viewCount"] for v in values)


@pytest.mark.timeout(STACK_TIMEOUT)
def test_enqueue_in_the_stack_refreshes_every_sample_post_in_the_site_volume_and_status_says_so(
        stack: Stack) -> None:
    seeds = seed_posts()
    videos = sorted(p for p, data in seeds.items() if "vid_id" in front_matter(data))
    assert stack.posts() == seeds  # the volume starts as the image's copy of seeds/

    queued = stack.write("postrefresh", "enqueue", "--all")
    assert queued.returncode == 0, queued.stderr.decode()
    assert f"queued: {len(videos)} " in queued.stdout.decode()
    stack.wait(lambda: all_refreshed(stack.posts(), videos), 120, "not every post was refreshed")

    after = stack.posts()
    assert {p: after[p] for p in seeds if p not in videos} == {p: seeds[p] for p in seeds if p not in videos}
    status = stack.write("postrefresh", "status", "--json")
    assert status.returncode == 0, status.stderr.decode()
    facts = json.loads(status.stdout)
    assert facts["outcomes"] == {"refreshed": len(videos)}, facts
    # enqueue sends the 12 posts (11 distinct ids) as one fetch_batch: one videos.list call
    assert facts["quota_used_today"] == 1, facts
    text = stack.write("postrefresh", "status")
    assert text.returncode == 0 and f"refreshed {len(videos)}" in text.stdout.decode(), text.stdout

    tasks = stack.flower("/api/tasks").text
    assert "postrefresh.write" in tasks and "QkqV7TrhN-c" in tasks
    assert DEMO_KEY not in tasks and DEMO_KEY not in stack.logs(*APP_SERVICES)
    assert_every_service_runs_without_restarts(stack)


@pytest.mark.timeout(STACK_TIMEOUT)
def test_the_services_import_the_installed_package_not_a_source_tree(stack: Stack) -> None:
    # `python -c`, like `celery -A tasks`, puts the working directory first on sys.path.
    where = stack.write("python", "-c", "import tasks, worker; print(tasks.__file__, worker.__file__)")
    assert where.returncode == 0, where.stderr.decode()
    assert all("-packages/" in path for path in where.stdout.decode().split()), where.stdout


@pytest.mark.timeout(STACK_TIMEOUT)
def test_stopping_the_stack_ends_every_service_by_sigterm_not_by_the_kill_after_its_grace_period(
        stack: Stack) -> None:
    # The last test of the module: it stops the stack the others use.
    stopped = stack.compose("stop", "--timeout", "20", timeout=180)
    assert stopped.returncode == 0, stopped.stderr.decode()
    codes = {name: int(code) for name, (code,) in stack.inspect("{{.State.ExitCode}}").items()}
    assert set(codes) == set(ALL_SERVICES)
    assert [name for name, code in codes.items() if code == 137] == [], codes  # 137: SIGKILL
