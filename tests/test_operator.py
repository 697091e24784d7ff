"""The operator's side of the Celery layer, driven as an operator meets it: `postrefresh
enqueue|status|metrics` as subprocesses with their own settings, and workers started with
the README's own command lines."""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.celery_fixtures import (
    POSTREFRESH,
    ROOT,
    celery_env,
    free_port,
    postrefresh,
    redis_client,
    redis_url,
    wait_for,
)
from worker.simulator import YouTubeSimulator

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


def test_help_lists_the_celery_commands_that_tasks_registers() -> None:
    result = subprocess.run([POSTREFRESH, "--help"], capture_output=True, text=True, timeout=60, check=True)
    for command in ("enqueue", "status", "metrics"):
        assert re.search(rf"^\s+{command}\s+\w", result.stdout, re.M), result.stdout
    enqueue = subprocess.run([POSTREFRESH, "enqueue", "--help"], capture_output=True, text=True, timeout=60)
    assert enqueue.returncode == 0 and "--all" in enqueue.stdout and "--config" in enqueue.stdout


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
