"""The install stage: what `pip install` gives a user, proven outside the checkout.

The package is built as a wheel (not editable) from a copy of the checkout and installed with
no extras into a fresh venv in a temp folder; every command then runs from that venv with the
current folder elsewhere and no PYTHONPATH: `demo`, `run`, `report`, `metrics`, the Celery
workers and beat the README's "Operating" section starts, `enqueue --all` and `status`. The
last test adds the `flower` extra. The wheels it needs are kept between runs (WHEELS).
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import packages_distributions
from pathlib import Path

import httpx
import pytest
import redis

from tests.celery_fixtures import (
    POSTREFRESH,
    ROOT,
    free_port,
    kill_group,
    redis_client,
    redis_url,
    wait_for,
)
from tests.conftest import FAST_CONFIG, SEEDS
from tests.simulator_fixtures import API_KEY
from tests.test_run import assert_matches_truth, video_posts

__all__ = ["redis_client", "redis_url"]  # fixtures used below
# The first test builds the wheel and installs it: cold, that downloads every dependency.
pytestmark = pytest.mark.timeout(600)

CODE = ("worker", "tasks")
# What zoneinfo reads as data, never imported by name.
IMPORTED_BY_NO_NAME = {"tzdata"}
FLOWER_AUTH = ("operator", "install-test-pw")
# Every wheel the stage has needed (build backend, dependencies), so that a warm run reads no
# index: pip's own HTTP cache keeps nothing on this machine. Delete it to test newer releases.
WHEELS = Path.home() / ".cache" / "postrefresh" / "wheels"


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_dependencies(*extras: str) -> set[str]:
    """The distributions pyproject.toml installs with no extras, or with `extras`, by normalised name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *(d for e in extras for d in project["optional-dependencies"][e])]
    return {normalised(re.match(r"[A-Za-z0-9._-]+", d)[0]) for d in wanted}


def modules_of_the_code() -> list[str]:
    """Every module of worker/ and tasks/ by dotted name (not `__main__`, which runs the CLI)."""
    files = sorted(p for package in CODE for p in (ROOT / package).rglob("*.py"))
    names = [".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__") for p in files]
    return [n for n in names if not n.endswith("__main__")]


def distributions_the_code_imports() -> set[str]:
    """The installed distributions whose top-level modules worker/ and tasks/ import."""
    providers = packages_distributions()
    imported: set[str] = set()
    for package in CODE:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - set(CODE)
    return {normalised(dist) for module in third_party for dist in providers.get(module, [module])}


def test_every_package_the_code_imports_is_a_runtime_dependency_or_an_extra() -> None:
    # Only code that runs inside Flower, or sends notifications, may import what those extras
    # bring (the stage below shows that the rest runs without them).
    assert distributions_the_code_imports() - runtime_dependencies("flower", "notify") == set()


def test_every_runtime_dependency_is_imported_by_the_code() -> None:
    assert runtime_dependencies() - distributions_the_code_imports() - IMPORTED_BY_NO_NAME == set()


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=540)


def pip_from_cached_wheels(args: list[str], needs: list[str]) -> None:
    """`pip ARGS` with WHEELS as its only index; on a miss, add the wheels `needs` takes, retry."""
    offline = ["--no-index", "--find-links", str(WHEELS)]
    if pip(*args, *offline).returncode == 0:
        return
    WHEELS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WHEELS.parent) as fresh:
        filled = pip("wheel", "--quiet", "--wheel-dir", fresh, *needs)
        assert filled.returncode == 0, filled.stderr
        for wheel in Path(fresh).glob("*.whl"):
            if not wheel.name.startswith("postrefresh-"):
                os.replace(wheel, WHEELS / wheel.name)  # whole files only: another run may read them
    result = pip(*args, *offline)
    assert result.returncode == 0, result.stderr


def bare_env() -> dict[str, str]:
    """The caller's environment minus anything that points at the checkout or sets postrefresh."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
            and not k.startswith(("POSTREFRESH", "YOUTUBE", "CELERY", "FLOWER", "REDIS"))}


@dataclass(frozen=True)
class Install:
    """A venv outside the checkout holding the wheel built from it."""

    venv: Path
    wheel: Path

    def exe(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def env(self, **settings: str) -> dict[str, str]:
        """A bare environment with the venv first on PATH, and `settings`."""
        env = bare_env()
        return {**env, "PATH": f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", **settings}

    def run(self, cwd: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)

    def pip_install(self, requirement: str) -> None:
        # The test's own pip installs into the venv: the venv itself has no pip or setuptools,
        # so nothing that pip would bring can stand in for an undeclared dependency.
        pip_from_cached_wheels(["--python", self.exe("python"), "install", "--quiet", requirement],
                               needs=[requirement])

    def has_flower(self) -> bool:
        probe = "import importlib.util as u; print(u.find_spec('flower') is not None)"
        return self.run(self.venv, self.env(), self.exe("python"), "-c", probe).stdout.strip() == "True"


def build_wheel(out: Path) -> Path:
    """`pip wheel` of a copy of the checkout's files (tracked, or new and not ignored)."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, check=True).stdout
    source = out / "source"
    for name in filter(None, listed.decode().split("\0")):
        if (ROOT / name).is_file():  # a tracked file deleted in the working tree is not copied
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    pip_from_cached_wheels(["wheel", "--no-deps", "--quiet", "-w", str(out / "dist"), str(source)],
                           needs=build)
    return next((out / "dist").glob("postrefresh-*.whl"))


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Install:
    """The wheel, installed with no extras into a fresh venv in a temp folder."""
    folder = tmp_path_factory.mktemp("install")
    wheel = build_wheel(folder)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "venv")], check=True)
    installed = Install(folder / "venv", wheel)
    installed.pip_install(str(wheel))
    return installed


@dataclass
class Processes:
    """Long-running commands from the venv, each logging to `<name>.log` in `folder`."""

    env: dict[str, str]
    folder: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *argv: str) -> None:
        with open(self.folder / f"{name}.log", "wb") as out:
            # Own process group: stopping a worker stops its pool processes too.
            self.procs[name] = subprocess.Popen(argv, cwd=self.folder, env=self.env, stdout=out,
                                                stderr=subprocess.STDOUT, start_new_session=True)

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def alive(self) -> bool:
        """True while every process runs; a process that died fails the test with its log."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log(name)[-3000:]}")
        return True

    def stop(self) -> None:
        """A warm shutdown (SIGTERM) for each; kill -9 the group of one that does not stop."""
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                kill_group(proc)


@contextlib.contextmanager
def processes(env: dict[str, str], folder: Path) -> Iterator[Processes]:
    running = Processes(env, folder)
    try:
        yield running
    finally:
        running.stop()


def answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.TransportError:
        return False
    return True


@pytest.fixture(scope="module")
def simulator(install: Install, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The venv's `python -m worker.simulator` on a free port, accepting API_KEY: its URL."""
    port = free_port()
    folder = tmp_path_factory.mktemp("simulator")
    with processes(install.env(), folder) as running:
        running.start("simulator", install.exe("python"), "-m", "worker.simulator", "--port", str(port),
                      "--key", API_KEY)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: running.alive() and answers(url), 30, "the simulator did not answer")
        yield url


def site_env(install: Install, folder: Path, simulator: str, redis_url: str) -> dict[str, str]:
    """A copy of the sample site in `folder` and the environment every command of it gets."""
    shutil.copytree(SEEDS, folder / "site")
    (folder / "settings.toml").write_text(FAST_CONFIG + 'scan_every = "2s"\n')
    return install.env(REDIS_URL=redis_url, POSTREFRESH_SITE=str(folder / "site"),
                       POSTREFRESH_CONFIG=str(folder / "settings.toml"), YOUTUBE_API_KEY=API_KEY,
                       YOUTUBE_API_URL=f"{simulator}/youtube/v3", YOUTUBE_THUMBNAIL_URL=simulator)


def every_post_right(site: Path) -> bool:
    try:
        for post in video_posts(site):
            assert_matches_truth(post)
    except AssertionError:
        return False
    return True


def test_the_wheel_carries_every_module_and_the_sample_site(install: Install) -> None:
    names = set(zipfile.ZipFile(install.wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for package in CODE for p in (ROOT / package).rglob("*.py")}
    missing = sorted(modules - names)
    assert not missing, f"add their packages to [tool.setuptools] packages in pyproject.toml: {missing}"
    seeds = {p.relative_to(SEEDS).as_posix() for p in SEEDS.rglob("*") if p.is_file()}
    assert {f"worker/sample_site/{name}" for name in seeds} <= names
    assert not any(name.startswith(("seeds/", "tests/", "bench/")) for name in names)


def test_every_module_imports_from_the_venv_and_not_from_the_checkout(install: Install,
                                                                       tmp_path: Path) -> None:
    script = ("import importlib, sys\n"
              f"for name in {modules_of_the_code()!r}:\n"
              "    module = importlib.import_module(name)\n"
              f"    assert module.__file__.startswith({str(install.venv)!r}), module.__file__\n"
              f"assert not any(p.startswith({str(ROOT)!r}) for p in sys.path), sys.path\n")
    result = install.run(tmp_path, install.env(), install.exe("python"), "-c", script)
    assert result.returncode == 0, result.stderr
    assert not install.has_flower()


def test_demo_refreshes_the_packaged_sample_site_from_another_folder(install: Install,
                                                                     tmp_path: Path) -> None:
    result = install.run(tmp_path, install.env(), install.exe("postrefresh"), "demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"a copy of {install.venv}" in result.stdout and "/worker/sample_site" in result.stdout
    assert "+++ b/_posts/2022-04-13-kremlin-admits-significant-losses.md" in result.stdout
    assert list(tmp_path.iterdir()) == []  # the demo works on a temporary copy


def test_demo_of_the_checkouts_editable_install_copies_its_seeds(tmp_path: Path) -> None:
    result = subprocess.run([POSTREFRESH, "demo"], cwd=tmp_path, env=bare_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"a copy of {SEEDS} in" in result.stdout


def test_run_report_and_metrics_work_from_the_plain_install(
        install: Install, simulator: str, redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    env = site_env(install, tmp_path, simulator, redis_url)
    site = tmp_path / "site"
    result = install.run(tmp_path, env, install.exe("postrefresh"), "run")
    assert result.returncode == 0, result.stderr
    assert every_post_right(site)
    report = install.run(tmp_path, env, install.exe("postrefresh"), "report", "--out", "report.html")
    assert report.returncode == 0, report.stderr
    assert "<html" in (tmp_path / "report.html").read_text()
    with processes(env, tmp_path) as running:
        running.start("metrics", install.exe("postrefresh"), "metrics", "--port", "0")
        wait_for(lambda: running.alive() and "metrics at http" in running.log("metrics"), 30,
                 "postrefresh metrics did not start")
        url = re.search(r"http://\S+/metrics", running.log("metrics"))[0]
        scraped = httpx.get(url, timeout=10)
    assert scraped.status_code == 200
    assert "postrefresh_quota_budget 10000.0" in scraped.text
    assert not install.has_flower()


def test_notify_without_its_extra_is_one_clear_line_before_any_post_is_touched(
        install: Install, simulator: str, redis_url: str, tmp_path: Path) -> None:
    env = site_env(install, tmp_path, simulator, redis_url)
    site = tmp_path / "site"
    before = {p: p.read_bytes() for p in site.rglob("*.md")}
    config = tmp_path / "notify.toml"
    config.write_text('notify = ["json://127.0.0.1:9/hook?token=install-test-token"]\n')
    for argv in (["run", "--config", str(config)], ["notify", "--test", "--config", str(config)]):
        result = install.run(tmp_path, env, install.exe("postrefresh"), *argv)
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.strip().splitlines() == [
            "postrefresh: notify is set but Apprise is not installed: pip install 'postrefresh[notify]'"]
        assert "install-test-token" not in result.stdout + result.stderr
    assert {p: p.read_bytes() for p in site.rglob("*.md")} == before


def test_workers_and_beat_of_the_plain_install_refresh_every_enqueued_post(
        install: Install, simulator: str, redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    env = site_env(install, tmp_path, simulator, redis_url)
    site = tmp_path / "site"
    celery = install.exe("celery")
    with processes(env, tmp_path) as running:
        # The README's commands ("Operating"), with a smaller fetch pool on this shared machine.
        running.start("fetch", celery, "-A", "tasks", "worker", "-Q", "fetch", "-c", "2", "-E",
                      "-n", "fetch@%h", "--loglevel", "INFO")
        running.start("write", celery, "-A", "tasks", "worker", "-Q", "write", "-c", "1", "-E",
                      "-n", "write@%h", "--loglevel", "INFO")
        running.start("scan", celery, "-A", "tasks", "worker", "-Q", "scan", "-c", "1", "-E",
                      "-n", "scan@%h", "--loglevel", "INFO")
        running.start("beat", celery, "-A", "tasks", "beat", "-S", "celery.beat:Scheduler",
                      "--loglevel", "INFO")
        enqueued = install.run(tmp_path, env, install.exe("postrefresh"), "enqueue", "--all")
        assert enqueued.returncode == 0, enqueued.stderr
        assert "queued:" in enqueued.stdout
        wait_for(lambda: running.alive() and every_post_right(site), 120,
                 "the workers did not refresh every post")
        # Beat sends postrefresh.scan every 2 s (scan_every): the scan worker runs it.
        wait_for(lambda: running.alive() and re.search(r"postrefresh\.scan\[\S+\] succeeded",
                                                        running.log("scan")) is not None,
                 60, "no scan from beat reached the scan worker")
        status = install.run(tmp_path, env, install.exe("postrefresh"), "status")
        counted = install.run(tmp_path, env, install.exe("postrefresh"), "status", "--json")
        assert running.alive()
    assert status.returncode == 0 and counted.returncode == 0, status.stderr + counted.stderr
    videos = len(list(video_posts(site)))
    assert json.loads(counted.stdout)["outcomes"].get("refreshed") == videos, counted.stdout
    assert f"refreshed {videos}" in status.stdout and "fetch" in status.stdout, status.stdout
    for post in video_posts(site):
        assert_matches_truth(post)
    for name in ("fetch", "write", "scan", "beat"):
        assert API_KEY not in running.log(name)
    assert not install.has_flower()


# Last: it adds the flower extra to the venv the tests above check without it.
def test_the_flower_extra_gives_a_flower_that_wants_a_password_and_lists_the_workers(
        install: Install, redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    install.pip_install(f"{install.wheel}[flower]")
    env = install.env(REDIS_URL=redis_url, FLOWER_BASIC_AUTH=":".join(FLOWER_AUTH))
    port = free_port()
    with processes(env, tmp_path) as running:
        running.start("worker", install.exe("celery"), "-A", "tasks", "worker", "-Q", "fetch,write,scan",
                      "-c", "1", "-E", "-n", "all@%h", "--loglevel", "INFO")
        running.start("flower", install.exe("celery"), "-A", "tasks", "flower", f"--port={port}",
                      "--address=127.0.0.1")
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: running.alive() and answers(url), 60, "flower did not answer")
        anonymous = httpx.get(f"{url}/workers", timeout=10)
        wait_for(lambda: running.alive() and "all@" in httpx.get(
            f"{url}/api/workers?refresh=1", auth=FLOWER_AUTH, timeout=10).text, 60,
            "flower did not list the worker")
    assert anonymous.status_code == 401


# scripts/test-tools decides what to install from the commands it finds; a stub apt-get on a
# PATH of stubs shows what it would install, without touching the machine's packages.
TOOLS = {"redis-server": "redis-server", "docker-compose": "docker-compose", "dockerd": "docker.io",
         "debootstrap": "debootstrap", "chromium": "chromium", "jekyll": "jekyll", "hugo": "hugo",
         "strace": "strace", "node": "nodejs", "npm": "npm"}


NO_ENGINE = '[ "$1" = info ] && exit 1; exit 0'  # a docker client that reaches no engine


def run_test_tools(tmp_path: Path, commands: set[str], apt_exit: int = 0,
                   docker: str = NO_ENGINE) -> subprocess.CompletedProcess[str]:
    """Run scripts/test-tools as root on a PATH holding only stubs of `commands` and apt-get.

    A `docker` among them runs `docker` as its script.
    """
    stubs = tmp_path / "bin"
    stubs.mkdir()
    scripts = {"id": "echo 0", "apt-get": f'echo "apt-get $*" >> {tmp_path}/apt.log; exit {apt_exit}',
               **{name: docker if name == "docker" else "exit 0" for name in commands}}
    for name, body in scripts.items():
        (stubs / name).write_text(f"#!/bin/sh\n{body}\n")
        (stubs / name).chmod(0o755)
    return subprocess.run([shutil.which("bash") or "bash", str(ROOT / "scripts" / "test-tools")],
                          env={"PATH": str(stubs)}, capture_output=True, text=True, timeout=30)


def apt_calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "apt.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize(("present", "installed"), [
    (set(), list(TOOLS.values())),
    ({"docker", "redis-server", "chromium"},
     [package for command, package in TOOLS.items() if command not in ("redis-server", "chromium")]),
    ({*TOOLS, "docker"} - {"jekyll"}, ["jekyll"]),
], ids=["none there", "a docker client but no engine", "only jekyll missing"])
def test_test_tools_installs_only_what_is_missing_without_recommends(
        tmp_path: Path, present: set[str], installed: list[str]) -> None:
    result = run_test_tools(tmp_path, present)
    assert result.returncode == 0, result.stderr
    assert apt_calls(tmp_path) == [
        "apt-get update -qq",
        "apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 " + " ".join(installed)]


def test_test_tools_installs_no_engine_beside_one_a_docker_client_reaches(tmp_path: Path) -> None:
    # no dockerd here, but `docker info` answers: an engine through a socket or DOCKER_HOST
    result = run_test_tools(tmp_path, {*TOOLS, "docker"} - {"dockerd"}, docker="exit 0")
    assert result.returncode == 0, result.stderr
    assert apt_calls(tmp_path) == []


def test_test_tools_does_nothing_when_every_tool_and_an_engine_are_there(tmp_path: Path) -> None:
    result = run_test_tools(tmp_path, set(TOOLS))
    assert result.returncode == 0, result.stderr
    assert apt_calls(tmp_path) == []


def test_test_tools_fails_when_apt_get_fails(tmp_path: Path) -> None:
    result = run_test_tools(tmp_path, set(), apt_exit=100)
    assert result.returncode != 0
    assert apt_calls(tmp_path) == ["apt-get update -qq"]


def run_standin_images(tmp_path: Path, real: set[str]) -> list[str]:
    """Run scripts/standin-images with stubs of docker (`real` are the tags it has), debootstrap
    and chroot first on PATH; the calls they saw."""
    stubs, log = tmp_path / "bin", tmp_path / "calls.log"
    stubs.mkdir()
    have = " ".join(real)
    scripts = {
        "docker": f'echo "docker $*" >> {log}\n'
                  f'if [ "$1 $2" = "image inspect" ]; then\n'
                  f'  case " {have} " in *" $3 "*) exit 0;; esac; exit 1\n'
                  'fi\n'
                  'cat > /dev/null',
        "debootstrap": f'echo "debootstrap $*" >> {log}; mkdir -p "$4/etc/ssl/certs" "$4/usr/local/bin"',
        "chroot": "exit 0",
    }
    for name, body in scripts.items():
        (stubs / name).write_text(f"#!/bin/sh\n{body}\n")
        (stubs / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}",
           "POSTREFRESH_STANDIN_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(["bash", str(ROOT / "scripts" / "standin-images")], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line for line in log.read_text().splitlines() if not line.startswith("docker image inspect")]


def test_standin_images_never_replace_a_real_image(tmp_path: Path) -> None:
    calls = run_standin_images(tmp_path, {"python:3.11-slim"})
    assert [call.split()[0] for call in calls] == ["debootstrap", "docker"]
    assert calls[1].startswith("docker import") and calls[1].endswith(" - redis:7")


def test_standin_images_make_nothing_where_both_images_are_there(tmp_path: Path) -> None:
    assert run_standin_images(tmp_path, {"python:3.11-slim", "redis:7"}) == []
