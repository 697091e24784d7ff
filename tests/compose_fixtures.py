"""Real parts for the compose tests: a Docker engine, the project's image, the demo stack up."""

from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

from tests.celery_fixtures import ROOT, free_port, wait_for

COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "config" / "env.example"
FLOWER_AUTH = ("operator", "compose-test-pw")
SETTLE_SECONDS = 10  # a crash-looping service shows a restart well within this


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
        # setsid -f forks dockerd off and returns: the engine outlives the run with no child left to reap
        subprocess.run(["setsid", "-f", daemon], stdin=subprocess.DEVNULL, stdout=log,
                       stderr=subprocess.STDOUT, check=True, timeout=30)
    wait_for(lambda: engine_answers(client), 60, f"dockerd started but does not answer; see {log_path}")
    return client


def run_logged(argv: list[str], log: Path, timeout: float) -> None:
    """Run a build step with its output in `log`; a failure quotes the end of it."""
    with open(log, "wb") as out:
        code = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout).returncode
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

    def inspect(self, fields: str) -> dict[str, list[str]]:
        """`docker inspect --format FIELDS` of each service's container, split into words."""
        ids = subprocess.run([self.docker, "ps", "-aq", "--filter",
                              f"label=com.docker.compose.project={self.name}"],
                             capture_output=True, text=True, timeout=30, check=True).stdout.split()
        shown = subprocess.run([self.docker, "inspect", "--format",
                                '{{index .Config.Labels "com.docker.compose.service"}} ' + fields, *ids],
                               capture_output=True, text=True, timeout=30, check=True).stdout
        return {name: rest for name, *rest in map(str.split, shown.splitlines())}

    def states(self) -> dict[str, tuple[str, int]]:
        """Each service's container state and restart count."""
        shown = self.inspect("{{.State.Status}} {{.RestartCount}}")
        return {name: (state, int(restarts)) for name, (state, restarts) in shown.items()}

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

    def logs(self, *services: str, tail: str = "all") -> str:
        out = self.compose("logs", "--no-color", f"--tail={tail}", *services, timeout=60).stdout
        return out.decode(errors="replace")

    def failure(self, what: str) -> str:
        """What an assertion shows: `what`, each service's state and the end of its log."""
        return f"{what}\n{self.states()}\n{self.logs(tail='20')}"

    def ready(self) -> bool:
        """Flower lists the three workers; a service that restarted meanwhile fails at once."""
        if any(restarts for _, restarts in self.states().values()):
            pytest.fail(self.failure("a service restarted"))
        return {"fetch", "write", "scan"} <= self.flower_workers()

    def wait(self, condition: Callable[[], bool], seconds: float, what: str) -> None:
        try:
            wait_for(condition, seconds, what)
        except AssertionError:
            pytest.fail(self.failure(what))


@pytest.fixture(scope="module")
def stack(docker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Stand-in base images where missing, the project's image, then the demo stack up; down -v after."""
    folder = project_folder(tmp_path_factory.mktemp("compose"), ":".join(FLOWER_AUTH))
    run_logged(["bash", str(ROOT / "scripts" / "standin-images")], folder / "standins.log", 900)
    name, port = f"postrefresh_test_{secrets.token_hex(4)}", free_port()
    image = f"postrefresh:test-{name[-8:]}"  # this run's own tag: concurrent runs never swap images
    run_logged([docker, "build", "--network", "host", "--force-rm", "-t", image, str(ROOT)],
               folder / "build.log", 900)
    env = bare_env(folder, POSTREFRESH_IMAGE=image, HOST_FLOWER_PORT=str(port))
    running = Stack(docker, folder, name, env, f"http://127.0.0.1:{port}")
    try:
        up = running.compose("up", "-d", "--no-build", timeout=300)
        assert up.returncode == 0, up.stderr.decode()
        running.wait(running.ready, 180, "Flower never listed the fetch, write and scan workers")
        time.sleep(SETTLE_SECONDS)
        yield running
    finally:
        (folder / "compose.log").write_text(running.logs())
        running.compose("down", "-v", "--remove-orphans", "--timeout", "20")
        # With its layers: every change to the code invalidates them anyway, so a kept cache
        # would only pile up.
        subprocess.run([docker, "rmi", image], capture_output=True, timeout=60)

