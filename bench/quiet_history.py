"""How many post files a week of daily runs rewrites, with and without `min_change`.

The simulator's views grow by a fixed step per video and epoch (1 to 1,000 views; the posts
hold up to 5M), as real statistics drift between daily runs. Each epoch is one run over the
same 1,000 generated posts; the first run refreshes every post either way.

    python bench/quiet_history.py [--posts 1000] [--runs 8] [--min-change "1% or 500"]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from gen_posts import generate_site  # run as `python bench/...`: bench/ is sys.path[0]

from worker.cli.program import main as postrefresh
from worker.simulator.config import SimulatorConfig
from worker.simulator.server import YouTubeSimulator

KEY = "quiet-bench-key"


def runs(site: Path, sim: YouTubeSimulator, config: Path, count: int) -> list[tuple[int, int]]:
    """(posts rewritten, posts held back) of `count` runs, one simulator epoch each."""
    figures = []
    for epoch in range(count):
        sim.config = dataclasses.replace(sim.config, epoch=epoch)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = postrefresh(["run", "--site", str(site), "--config", str(config), "--no-thumbnails",
                                "--json", "-q"])
        assert code == 0, f"run {epoch} exited {code}"
        summary = json.loads(out.getvalue())
        figures.append((summary["refreshed"], summary["held_by_min_change"]))
    return figures


def main(argv: list[str] | None = None) -> int:
    """Print a Markdown table: per run, posts rewritten without and with `min_change`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--min-change", default="1% or 500")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, YouTubeSimulator(
            SimulatorConfig(api_keys=frozenset({KEY}))) as sim:
        work = Path(tmp)
        generate_site(work / "off", args.posts)
        shutil.copytree(work / "off", work / "on")
        (work / "off.toml").write_text("")
        (work / "on.toml").write_text(f"min_change = {json.dumps(args.min_change)}\n")
        os.environ.update(YOUTUBE_API_KEY=KEY, YOUTUBE_API_URL=f"{sim.url}/youtube/v3",
                          YOUTUBE_THUMBNAIL_URL=sim.url)
        off = runs(work / "off", sim, work / "off.toml", args.runs)
        on = runs(work / "on", sim, work / "on.toml", args.runs)
    print(f"| run | posts rewritten, min_change off | posts rewritten, min_change = {args.min_change!r} "
          "| left as they are |")
    print("|---:|---:|---:|---:|")
    for number, ((written_off, _), (written_on, held)) in enumerate(zip(off, on, strict=True), 1):
        print(f"| {number} | {written_off:,} | {written_on:,} | {held:,} |")
    total_off, total_on = sum(w for w, _ in off[1:]), sum(w for w, _ in on[1:])
    print(f"\nruns 2-{args.runs}: {total_off:,} post rewrites without min_change, {total_on:,} with it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
