"""Eleventy and Astro for the site-build tests, as scripts/test installs them in tests/node/."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.compose_fixtures import unavailable

NODE = Path(__file__).resolve().parent / "node"
MODULES = NODE / "node_modules"
MISSING = "scripts/test installs node and npm (scripts/test-tools) and runs `npm ci` in tests/node"


def node_tool(name: str) -> Path:
    """tests/node's `name` command (what `npx name` runs there); unavailable when it is not installed."""
    tool = MODULES / ".bin" / name
    if shutil.which("node") is None or not tool.is_file():
        unavailable(f"{name} is not installed: {MISSING}")
    return tool


def use_node_modules(site: Path) -> None:
    """Give `site` its node_modules, as `npm install` in it would: links to tests/node's packages.

    The folder itself is the site's own, as the caches Astro and Vite keep in it must be.
    """
    if not MODULES.is_dir():
        unavailable(f"tests/node/node_modules is not there: {MISSING}")
    (site / "node_modules").mkdir()
    for package in MODULES.iterdir():
        if package.name == ".bin" or not package.name.startswith("."):
            (site / "node_modules" / package.name).symlink_to(package, target_is_directory=True)


def run_build(argv: list[str | Path], site: Path) -> subprocess.CompletedProcess[str]:
    """Run a generator's build in `site`, its output captured."""
    env = {**os.environ, "ASTRO_TELEMETRY_DISABLED": "1", "NO_COLOR": "1"}
    return subprocess.run([str(a) for a in argv], cwd=site, capture_output=True, text=True,
                          timeout=120, check=False, env=env)


def built(result: subprocess.CompletedProcess[str]) -> None:
    """The build succeeded; else the assertion shows its output."""
    output = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, f"{result.args[0]} exited {result.returncode}:\n{output}"
