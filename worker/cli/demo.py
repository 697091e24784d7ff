"""`postrefresh demo`: refresh a temporary copy of the bundled seed site against the simulator.

Offline, no key, no Redis: it starts the project's YouTube simulator on loopback, runs the
same code as `postrefresh run`, prints the diff it made, then runs again to show that an
unchanged site is not written.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from worker.cli.common import settings_from
from worker.errors import ConfigError
from worker.refresh import summary
from worker.refresh.pipeline import RunOptions
from worker.refresh.run import run_site
from worker.refresh.write import post_diff
from worker.simulator.config import SimulatorConfig
from worker.simulator.server import YouTubeSimulator

DEMO_KEY = "demo-key"


def bundled_sample_site() -> Path:
    """The sample site: `worker/sample_site` in an installed wheel, `seeds/` in a checkout."""
    # The wheel maps seeds/ to worker/sample_site (pyproject.toml); an editable install
    # imports worker/ from the checkout, where the same files sit at the top level.
    packaged = Path(__file__).resolve().parents[1] / "sample_site"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "seeds"


def add_demo_parser(sub: Any) -> None:
    """Register `postrefresh demo`."""
    demo = sub.add_parser("demo", help="refresh a copy of the bundled sample site, offline")
    demo.add_argument("--seeds", type=Path, default=bundled_sample_site(),
                      help="the sample site to copy (the bundled one)")
    demo.add_argument("--keep", type=Path, help="copy into this folder and keep it")
    demo.add_argument("-v", "--verbose", action="count", default=0)
    demo.add_argument("-q", "--quiet", action="store_true")
    demo.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Copy the seeds, run twice against the simulator, print the diff and the summaries."""
    if not args.verbose:
        logging.getLogger("worker").setLevel(logging.WARNING)
    if not (args.seeds / "_posts").is_dir():
        raise ConfigError(f"no sample site at {args.seeds} (expected {args.seeds}/_posts)")
    with tempfile.TemporaryDirectory(prefix="postrefresh-demo-") as tmp:
        site = args.keep or Path(tmp) / "site"
        shutil.copytree(args.seeds, site, dirs_exist_ok=True)
        with YouTubeSimulator(SimulatorConfig(api_keys=frozenset({DEMO_KEY}))) as sim:
            settings = settings_from(argparse.Namespace(site=str(site), config=None)).with_values(
                api_key=DEMO_KEY, api_url=f"{sim.url}/youtube/v3", thumbnail_url=sim.url)
            print(f"demo: refreshing a copy of {args.seeds} in {site} against {sim.url}\n")
            first = run_site(settings, RunOptions(), lambda outcome: None)
            _print_diff(args.seeds, site)
            print(summary.as_text(first))
            print("\ndemo: a second run right away finds nothing to change and writes nothing:")
            second = run_site(settings, RunOptions(), lambda outcome: None)
            print(summary.as_text(second))
    return max(summary.exit_code(first), summary.exit_code(second))


def _print_diff(before: Path, after: Path) -> None:
    for old in sorted(before.rglob("*")):
        if not old.is_file():
            continue
        new = after / old.relative_to(before)
        a, b = old.read_bytes(), new.read_bytes()
        if a != b:
            print(post_diff(old.relative_to(before).as_posix(), a, b))
