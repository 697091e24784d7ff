"""docker-compose.yml: its shape, `docker-compose config`, and the demo stack started for real in Docker."""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
import yaml

from tests.celery_fixtures import ROOT, free_port, wait_for
from tests.conftest import SEEDS
from worker.settings import ENV_VARS
from worker.simulator_truth import video_truth

pytestmark = pytest.mark.timeout(120)

COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "config" / "env.example"
APP_SERVICES = ("fetch", "write", "scan", "beat", "flower")
ALL_SERVICES = ("redis", *APP_SERVICES, "simulator")
FLOWER_AUTH = ("operator", "compose-test-pw")
DEMO_KEY = "demo-key"  # the key config/env.example sets and the demo simulator accepts
# Cold (no cached root file system, no images): about 3 min of debootstrap, 1 min of image
# build and 1 min of stack on this 2-core machine; the limit leaves room for a loaded machine.
STACK_TIMEOUT = 1200
SETTLE_SECONDS = 10  # a crash-looping service shows a restart well within this


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


def docker_compose() -> str:
    client = shutil.which("docker-compose")
    if client is None:
        pytest.fail("docker-compose is not installed: run scripts/test, which installs it "
                    "(apt-get install --no-install-recommends docker-compose)")
    return client


def project_folder(folder: Path, flower_auth: str) -> Path:
    """A folder laid out as the README says: docker-compose.yml, config/, and .env from env.example."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(COMPOSE, folder)
    shutil.copytree(ROOT / "config", folder / "config", dirs_exist_ok=True)
    (folder / ".env").write_text(re.sub(r"(?m)^FLOWER_BASIC_AUTH=.*$", f"FLOWER_BASIC_AUTH={flower_auth}",
                                        ENV_EXAMPLE.read_text()))
    return folder


def bare_env(folder: Path, **extra: str) -> dict[str, str]:
    """Nothing from the caller's shell (say, their own FLOWER_BASIC_AUTH) leaks into compose."""
    passed = {k: os.environ[k] for k in ("PATH", "DOCKER_HOST") if k in os.environ}
    return {**passed, "HOME": str(folder), **extra}


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

def unavailable(reason: str) -> NoReturn:
    """CI must run the stack: fail there; elsewhere a machine without Docker may skip it."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(reason)
    pytest.skip(reason)


def engine_answers(docker: str) -> bool:
    return subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode == 0


@pytest.fixture(scope="module")
def docker() -> str:
    """The docker client, talking to an engine: dockerd is started (and left running) if none answers."""
    client, daemon = shutil.which("docker"), shutil.which("dockerd")
    if client is not None and engine_answers(client):
        return client
    if client is None or daemon is None:
        unavailable("no Docker engine: install docker.io (scripts/test does), or start yours")
    log_path = Path(tempfile.gettempdir()) / "postrefresh-dockerd.log"
    with open(log_path, "ab") as log:
        subprocess.Popen([daemon], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for(lambda: engine_answers(client), 60, f"dockerd started but does not answer; see {log_path}")
    return client


def run_logged(argv: list[str], log: Path, timeout: float, **kwargs: Any) -> None:
    """Run a build step with its output in `log`; a failure quotes the end of it."""
    with open(log, "wb") as out:
        code = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
                              **kwargs).returncode
    assert code == 0, f"{' '.join(argv)} exited {code}; see {log}:\n{log.read_text()[-3000:]}"


@dataclass
class Stack:
    """One running `docker-compose --profile demo` project, driven as an operator would."""

    docker: str
    folder: Path
    name: str
    env: dict[str, str]
    flower_url: str

    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([docker_compose(), "-p", self.name, "--profile", "demo", *args],
                              cwd=self.folder, env=self.env, capture_output=True, timeout=timeout)

    def write(self, *argv: str) -> subprocess.CompletedProcess[bytes]:
        """`docker-compose exec -T write ARGV`: a command on the site's host, as the README says."""
        return self.compose("exec", "-T", "write", *argv)

    def states(self) -> dict[str, tuple[str, int]]:
        """Each service's container state and restart count."""
        ids = subprocess.run([self.docker, "ps", "-aq", "--filter",
                              f"label=com.docker.compose.project={self.name}"],
                             capture_output=True, text=True, timeout=30, check=True).stdout.split()
        shown = subprocess.run([self.docker, "inspect", "--format", '{{index .Config.Labels '
                                '"com.docker.compose.service"}} {{.State.Status}} {{.RestartCount}}', *ids],
                               capture_output=True, text=True, timeout=30, check=True).stdout
        return {name: (state, int(count)) for name, state, count in map(str.split, shown.splitlines())}

    def posts(self) -> dict[str, bytes]:
        """Every file under _posts/ in the site volume, read from the write container."""
        result = self.write("tar", "-C", "/site", "-cf", "-", "_posts")
        assert result.returncode == 0, result.stderr.decode()
        with tarfile.open(fileobj=io.BytesIO(result.stdout)) as archive:
            return {m.name: archive.extractfile(m).read()  # type: ignore[union-attr]
                    for m in archive.getmembers() if m.isfile()}

    def flower(self, path: str, auth: tuple[str, str] | None = FLOWER_AUTH) -> httpx.Response:
        return httpx.get(self.flower_url + path, auth=auth, timeout=15)

    def flower_workers(self) -> set[str]:
        try:
            reply = self.flower("/api/workers?refresh=1")
        except httpx.TransportError:
            return set()
        return {name.split("@")[0] for name in reply.json()} if reply.status_code == 200 else set()

    def logs(self) -> str:
        return self.compose("logs", "--no-color", timeout=60).stdout.decode(errors="replace")


@pytest.fixture(scope="module")
def stack(docker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Stand-in base images where missing, the project's image, then the demo stack up; down -v after."""
    folder = project_folder(tmp_path_factory.mktemp("compose"), ":".join(FLOWER_AUTH))
    run_logged(["bash", str(ROOT / "scripts" / "standin-images")], folder / "standins.log", 900)
    name, port = f"postrefresh_test_{secrets.token_hex(4)}", free_port()
    image = f"postrefresh:test-{name[-8:]}"  # this run's own tag: concurrent runs never swap images
    run_logged([docker, "build", "--network", "host", "-t", image, str(ROOT)], folder / "build.log", 900)
    env = bare_env(folder, POSTREFRESH_IMAGE=image, HOST_FLOWER_PORT=str(port))
    running = Stack(docker, folder, name, env, f"http://127.0.0.1:{port}")
    try:
        up = running.compose("up", "-d", "--no-build", timeout=300)
        assert up.returncode == 0, up.stderr.decode()
        wait_for(lambda: {"fetch", "write", "scan"} <= running.flower_workers(), 180,
                 f"Flower never listed the fetch, write and scan workers:\n{running.logs()[-4000:]}")
        time.sleep(SETTLE_SECONDS)
        yield running
    finally:
        (folder / "compose.log").write_text(running.logs())
        running.compose("down", "-v", "--remove-orphans", "--timeout", "20")
        # --no-prune keeps the build's layers as the cache of the next run.
        subprocess.run([docker, "rmi", "--no-prune", image], capture_output=True, timeout=60)


def assert_every_service_runs_without_restarts(stack: Stack) -> None:
    states = stack.states()
    assert states == dict.fromkeys(ALL_SERVICES, ("running", 0)), f"{states}\n{stack.logs()[-4000:]}"


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
    wait_for(lambda: all_refreshed(stack.posts(), videos), 120,
             f"not every post was refreshed:\n{stack.logs()[-4000:]}")

    after = stack.posts()
    assert {p: after[p] for p in seeds if p not in videos} == {p: seeds[p] for p in seeds if p not in videos}
    status = stack.write("postrefresh", "status", "--json")
    assert status.returncode == 0, status.stderr.decode()
    facts = json.loads(status.stdout)
    assert facts["outcomes"] == {"refreshed": len(videos)}, facts
    assert 1 <= facts["quota_used_today"] <= 2, facts  # 11 distinct ids: one videos.list, maybe two
    text = stack.write("postrefresh", "status")
    assert text.returncode == 0 and f"refreshed {len(videos)}" in text.stdout.decode(), text.stdout

    tasks = stack.flower("/api/tasks").text
    assert "postrefresh.write" in tasks and "QkqV7TrhN-c" in tasks
    app_logs = stack.compose("logs", "--no-color", *APP_SERVICES).stdout.decode(errors="replace")
    assert DEMO_KEY not in tasks and DEMO_KEY not in app_logs
    assert_every_service_runs_without_restarts(stack)
