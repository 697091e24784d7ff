"""Shared fixtures: a running simulator, a copy of the seed site, and the CLI run in-process."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.simulator_fixtures import API_KEY
from worker.cli.program import main
from worker.simulator.config import SimulatorConfig
from worker.simulator.server import YouTubeSimulator

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
FAST_CONFIG = """
read_timeout = 0.5
connect_timeout = 0.5
retry_attempts = 8
retry_max_wait = 0.2
thumbnail_concurrency = 4
"""


@dataclass
class CliResult:
    """Exit code and captured output of one in-process `postrefresh` call."""

    code: int
    out: str
    err: str


@pytest.fixture
def sim() -> Iterator[YouTubeSimulator]:
    """A running simulator that accepts API_KEY and answers Retry-After with short waits."""
    config = SimulatorConfig(api_keys=frozenset({API_KEY}), retry_after=0.05, slow_seconds=1.0)
    with YouTubeSimulator(config) as simulator:
        yield simulator


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A fresh copy of the seed site."""
    target = tmp_path / "site"
    shutil.copytree(SEEDS, target)
    return target


@pytest.fixture
def cli(sim: YouTubeSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run `postrefresh ARGS` in-process against the simulator, with short timeouts."""
    config = tmp_path / "fast.toml"
    config.write_text(FAST_CONFIG)
    monkeypatch.setenv("YOUTUBE_API_KEY", API_KEY)
    monkeypatch.setenv("YOUTUBE_API_URL", f"{sim.url}/youtube/v3")
    monkeypatch.setenv("YOUTUBE_THUMBNAIL_URL", sim.url)
    monkeypatch.setenv("POSTREFRESH_CONFIG", str(config))
    monkeypatch.delenv("POSTREFRESH_SITE", raising=False)

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (outside .postrefresh) with its bytes."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".postrefresh" not in p.parts
    }
