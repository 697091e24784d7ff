"""Eleventy and Astro for the site-build tests, as scripts/test installs them in tests/node/."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.compose_fixtures import unavailable

NODE = Path(__file__).resolve().parent / "node"
MODULES = NODE / "node_modules"


def node_tool(name: str) -> Path:
    """tests/node's `name` command (what `npx name` runs there); unavailable when it is not installed."""
    tool = MODULES / ".bin" / name
    if shutil.which("node") is None or not tool.is_file():
        unavailable(f"{name} is not installed: scripts/test installs node and npm (scripts/test-tools) "
                    "and runs `npm ci` in tests/node")
    return tool


def use_node_modules(site: Path) -> None:
    """Give `site` its node_modules, as `npm install` in it would (a link: one install serves every test)."""
    (site / "node_modules").symlink_to(MODULES, target_is_directory=True)


def run_build(argv: list[str | Path], site: Path) -> None:
    """Run a generator's build in `site`; a failure shows its output."""
    env = {**os.environ, "ASTRO_TELEMETRY_DISABLED": "1", "NO_COLOR": "1"}
    result = subprocess.run([str(a) for a in argv], cwd=site, capture_output=True, text=True,
                            timeout=120, check=False, env=env)
    assert result.returncode == 0, f"{argv[0]} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
