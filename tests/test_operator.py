"""The operator's side of the Celery layer, driven as an operator meets it: `postrefresh
enqueue|status|metrics` as subprocesses with their own settings, and workers started with
the README's own command lines."""

from __future__ import annotations

import ast
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from tests.celery_fixtures import (
    CELERY,
    POSTREFRESH,
    ROOT,
    celery_env,
    free_port,
    postrefresh,
    redis_client,
    redis_url,
    wait_for,
)
from tests.conftest import FAST_CONFIG
from tests.test_run import video_posts
from worker.simulator.server import YouTubeSimulator

__all__ = ["redis_client", "redis_url"]  # fixtures used below
pytestmark = pytest.mark.timeout(180)
FORBIDDEN = ("celery", "kombu", "tasks")


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every absolute module an `import`, `from ... import` or `import_module("...")` names."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)):
            yield node.lineno, str(node.args[0].value)


def test_the_domain_never_imports_celery_kombu_or_tasks_not_even_lazily() -> None:
    found = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for path in sorted((ROOT / "worker").rglob("*.py"))
             for line, name in imported_modules(ast.parse(path.read_text(), str(path)))
             if name.split(".")[0] in FORBIDDEN]
    assert found == []


def test_the_celery_layer_imports_only_the_public_pieces_of_the_domain() -> None:
    private = []
    for path in sorted((ROOT / "tasks").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("worker"):
                names = [*node.module.split("."), *(alias.name for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [part for alias in node.names if alias.name.startswith("worker")
                         for part in alias.name.split(".")]
            else:
                continue
            if any(name.startswith("_") for name in names):
                private.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert private == []


def test_help_lists_the_celery_commands_that_tasks_registers() -> None:
    result = subprocess.run([POSTREFRESH, "--help"], capture_output=True, text=True, timeout=60, check=True)
    for command in ("enqueue", "status", "metrics"):
        assert re.search(rf"^\s+{command}\s+\w", result.stdout, re.M), result.stdout
    enqueue = subprocess.run([POSTREFRESH, "enqueue", "--help"], capture_output=True, text=True, timeout=60)
    assert enqueue.returncode == 0 and "--all" in enqueue.stdout and "--config" in enqueue.stdout


def test_registering_the_celery_commands_imports_neither_celery_nor_kombu() -> None:
    script = ("import sys; from worker.cli.program import build_parser; build_parser(); "
              "print(sorted({m.split('.')[0] for m in sys.modules} & {'celery', 'kombu'}))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            check=True)
    assert result.stdout.strip() == "[]"  # `run` and `report` never pay for Celery


@pytest.fixture
def decoy_env(redis_url: str, sim: YouTubeSimulator, site: Path, tmp_path: Path) -> dict[str, str]:
    """An environment whose POSTREFRESH_CONFIG points at a Redis nobody runs, and no REDIS_URL or
    site: a command that reads only the environment fails; one that reads its --config works."""
    decoy = tmp_path / "decoy.toml"
    decoy.write_text(f'redis_url = "redis://127.0.0.1:{free_port()}/0"\ndaily_quota = 777\n')
    env = celery_env(redis_url, sim, site, decoy)
    del env["REDIS_URL"], env["POSTREFRESH_SITE"]
    return env


def operator_config(tmp_path: Path, redis_url: str, extra: str = "") -> Path:
    config = tmp_path / "operator.toml"
    config.write_text(f'redis_url = "{redis_url}"\ndaily_quota = 1234\n{extra}')
    return config


def test_enqueue_takes_redis_and_the_posts_from_its_config_not_the_environment(
        decoy_env: dict[str, str], redis_url: str, redis_client: redis.Redis, site: Path,
        tmp_path: Path) -> None:
    config = operator_config(tmp_path, redis_url, 'posts_globs = ["_posts/2022-*.md"]\n')
    result = postrefresh(decoy_env, "enqueue", "--all", "--site", str(site), "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "queued: 1  already queued: 0" in result.stdout
    assert redis_client.llen("fetch") == 1


def test_enqueue_reads_the_sites_own_postrefresh_toml(
        redis_url: str, redis_client: redis.Redis, sim: YouTubeSimulator, site: Path, tmp_path: Path) -> None:
    (site / "_postrefresh.toml").write_text('posts_globs = ["_posts/2022-*.md"]\n')
    env = celery_env(redis_url, sim, site, tmp_path / "unused.toml")
    del env["POSTREFRESH_CONFIG"], env["POSTREFRESH_SITE"]
    result = postrefresh(env, "enqueue", "--all", "--site", str(site))
    assert result.returncode == 0, result.stderr
    assert "queued: 1  already queued: 0" in result.stdout
    assert redis_client.llen("fetch") == 1


def test_status_takes_redis_and_the_quota_from_its_config_not_the_environment(
        decoy_env: dict[str, str], redis_url: str, redis_client: redis.Redis, site: Path,
        tmp_path: Path) -> None:
    redis_client.rpush("fetch", "a message")
    config = operator_config(tmp_path, redis_url)
    result = postrefresh(decoy_env, "status", "--site", str(site), "--config", str(config))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "queues: fetch 1  write 0  scan 0"
    assert "quota: 0 of 1234 units used today" in lines


def test_status_prints_readable_lines_not_python_values(
        redis_url: str, redis_client: redis.Redis, sim: YouTubeSimulator, site: Path, tmp_path: Path) -> None:
    env = celery_env(redis_url, sim, site, tmp_path / "unused.toml")
    del env["POSTREFRESH_CONFIG"]
    assert postrefresh(env, "enqueue", "--all").returncode == 0
    result = postrefresh(env, "status")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "queues: fetch 12  write 0  scan 0",
        "in flight: no worker answered",
        "today: nothing yet",
        "quota: 0 of 10000 units used today",
        "plan: due old 12; needs 1 units, 10000 left today; 0 wait for quota",
    ]


def test_metrics_serves_the_budget_of_its_config(decoy_env: dict[str, str], redis_url: str,
                                                  tmp_path: Path) -> None:
    port = free_port()
    config = operator_config(tmp_path, redis_url)
    log = tmp_path / "metrics.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([POSTREFRESH, "metrics", "--config", str(config), "--port", str(port)],
                                env=decoy_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: proc.poll() is not None or _serves(port), 30, "metrics did not start")
        assert proc.poll() is None, log.read_text()
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        proc.terminate()
        proc.wait(10)
    assert "postrefresh_quota_budget 1234.0" in text


def _serves(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def readme_worker_commands() -> dict[str, list[str]]:
    """The README's `celery -A tasks worker` lines, by queue, as an operator would paste them."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("### Processes", 1)[1].split("```", 2)[1]
    commands = [shlex.split(line.split("#", 1)[0]) for line in block.splitlines()
                if line.startswith("celery -A tasks worker")]
    return {argv[argv.index("-Q") + 1]: argv for argv in commands}


@contextmanager
def started(argv: list[str], env: dict[str, str], folder: Path, log: Path) -> Iterator[None]:
    """A worker from the README's command line, answering a ping by its `-n` name."""
    name = argv[argv.index("-n") + 1].replace("%h", socket.gethostname())
    with log.open("wb") as out:
        proc = subprocess.Popen([CELERY, *argv[1:]], cwd=folder, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        ping = [CELERY, "-A", "tasks", "inspect", "ping", "-d", name, "--timeout", "1"]
        wait_for(lambda: subprocess.run(ping, cwd=folder, env=env, capture_output=True).returncode == 0,
                 60, f"{name} did not start; see {log}")
        yield
    finally:
        proc.terminate()
        proc.wait(30)


def test_workers_started_with_the_readmes_commands_log_at_info(
        redis_url: str, redis_client: redis.Redis, sim: YouTubeSimulator, site: Path, tmp_path: Path) -> None:
    config = tmp_path / "fast.toml"
    config.write_text(FAST_CONFIG + "thumbnails = false\n")
    env = celery_env(redis_url, sim, site, config)
    commands = readme_worker_commands()
    with ExitStack() as stack:
        for queue in ("fetch", "write", "scan"):
            stack.enter_context(started(commands[queue], env, tmp_path, tmp_path / f"{queue}.log"))
        subprocess.run([CELERY, "-A", "tasks", "call", "postrefresh.scan"], cwd=tmp_path, env=env,
                       capture_output=True, check=True, timeout=60)  # what beat sends
        scan_log = tmp_path / "scan.log"
        wait_for(lambda: bool(re.search(r"Task postrefresh\.scan\[\S+\] succeeded", scan_log.read_text())),
                 60, "the scan did not run")
        wait_for(lambda: all(redis_client.llen(q) == 0 for q in ("fetch", "write", "scan"))
                 and not redis_client.keys("postrefresh:queued:*"), 60, "queues did not drain")
    assert re.search(r"INFO/\S+\] scan: 12 due \(old 12\), 12 queued, 0 already queued, 0 wait for quota$",
                     scan_log.read_text(), re.M)
    fetch_log = (tmp_path / "fetch.log").read_text()
    assert re.search(r"INFO/\S+\] videos\.list for \d+ ids", fetch_log), "no INFO line per batch"
    assert "HTTP Request:" not in fetch_log  # not one line per request: the batch line says it
    written = re.findall(r"INFO/\S+\] refreshed (_posts/\S+) \(", (tmp_path / "write.log").read_text())
    assert sorted(written) == sorted(p.relative_to(site).as_posix() for p in video_posts(site))
