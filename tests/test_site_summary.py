"""`_data/postrefresh/summary.json`: its rankings, its no-change-no-write rule, and the README's
Liquid example rendered against it by real Jekyll and by python-liquid."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from liquid import Template

from bench.gen_posts import generate_site
from tests.conftest import CliResult
from tests.test_run import mapping, video_posts
from worker.frontmatter.editor import normalise
from worker.outputs.site_data import build_summary, write_summary
from worker.settings import Settings, SiteSettings
from worker.simulator.server import YouTubeSimulator
from worker.simulator.truth import expected_fields
from worker.site.paths import summary_file

pytestmark = pytest.mark.timeout(60)
Cli = Callable[..., CliResult]
SUMMARY_PATH = summary_file(SiteSettings().data_dir)
README = Path(__file__).resolve().parents[1] / "README.md"


def summary_of(site: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((site / SUMMARY_PATH).read_text())
    return data


def views(vid_id: str, epoch: int) -> int:
    return int(expected_fields(vid_id, epoch)["statistics.viewCount"])


def readme_example() -> str:
    match = re.search(r"<!-- liquid-example -->\n```liquid\n(.*?)```\n<!-- /liquid-example -->",
                      README.read_text(), re.DOTALL)
    assert match is not None, "README.md lost its liquid-example markers"
    return match.group(1)


def test_a_run_writes_the_most_viewed_posts_and_the_counts(cli: Cli, site: Path) -> None:
    (site / "_postrefresh.toml").write_text("summary_top = 5\n")
    assert cli("run", "--site", str(site)).code == 0
    summary = summary_of(site)
    posts = video_posts(site)
    assert summary["counts"] == {"videos": len(posts), "unavailable": 0}
    by_views = sorted(((int(normalise(mapping(p)["viewcount"])), p) for p in posts),
                      key=lambda item: -item[0])
    assert [v["views"] for v in summary["most_viewed"]] == [n for n, _ in by_views[:5]]
    first = summary["most_viewed"][0]
    assert first["vid_id"] == mapping(by_views[0][1])["vid_id"]
    assert (site / first["path"]).exists() and first["title"]
    assert summary["trending"] == []  # one observation in the window: no gain yet
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", summary["generated_at"])


def test_trending_ranks_the_views_gained_between_two_runs(cli: Cli, site: Path,
                                                          sim: YouTubeSimulator) -> None:
    assert cli("run", "--site", str(site)).code == 0
    sim.config = dataclasses.replace(sim.config, epoch=1)
    assert cli("run", "--site", str(site)).code == 0
    trending = summary_of(site)["trending"]
    assert trending, "the second epoch raised some view counts"
    for entry in trending:
        assert entry["gain"] == views(entry["vid_id"], 1) - views(entry["vid_id"], 0) > 0
        assert entry["views"] == views(entry["vid_id"], 1)
    assert [e["gain"] for e in trending] == sorted((e["gain"] for e in trending), reverse=True)


def test_an_unchanged_site_does_not_rewrite_the_summary(cli: Cli, site: Path) -> None:
    assert cli("run", "--site", str(site)).code == 0
    path = site / SUMMARY_PATH
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    assert cli("run", "--site", str(site)).code == 0
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert write_summary(site, Settings().with_values(site=site)) is None


def test_dry_run_and_site_summary_off_write_no_summary(cli: Cli, site: Path) -> None:
    assert cli("run", "--site", str(site), "--dry-run").code == 0
    assert not (site / SUMMARY_PATH).exists()
    (site / "_postrefresh.toml").write_text("site_summary = false\n")
    assert cli("run", "--site", str(site)).code == 0
    assert not (site / SUMMARY_PATH).exists()


def test_the_heaps_keep_exactly_the_top_n_of_a_larger_site(tmp_path: Path) -> None:
    generate_site(tmp_path, 300, seed=3)
    settings = Settings().with_values(site=tmp_path, summary_top=7)
    summary = build_summary(tmp_path, settings, datetime.now(UTC))
    every = sorted((int(normalise(mapping(p)["viewcount"])) for p in video_posts(tmp_path)), reverse=True)
    assert [v["views"] for v in summary["most_viewed"]] == every[:7]
    assert summary["counts"]["videos"] == len(every)


def test_the_readme_liquid_example_renders_with_jekyll_and_python_liquid(cli: Cli, site: Path,
                                                                       sim: YouTubeSimulator,
                                                                       tmp_path: Path) -> None:
    assert cli("run", "--site", str(site)).code == 0
    sim.config = dataclasses.replace(sim.config, epoch=1)
    assert cli("run", "--site", str(site)).code == 0
    summary = summary_of(site)
    example = readme_example()
    by_jekyll = render_with_jekyll(example, site / SUMMARY_PATH, tmp_path / "jekyll")
    by_python = Template(example).render(site={"data": {"postrefresh": {"summary": summary}}})
    for rendered in (by_jekyll, by_python):
        for entry in summary["most_viewed"][:5]:
            assert f">{entry['title']}</a> ({entry['views']} views)" in rendered
        assert f"{summary['trending'][0]['title']} (+{summary['trending'][0]['gain']})" in rendered
    assert by_jekyll.strip() == by_python.strip()


def render_with_jekyll(page: str, summary_json: Path, root: Path) -> str:
    jekyll = shutil.which("jekyll")
    if jekyll is None:
        pytest.fail("jekyll is not installed: run scripts/test, which installs Debian's jekyll")
    source = root / "src"
    (source / "_data" / "postrefresh").mkdir(parents=True)
    shutil.copy(summary_json, source / "_data" / "postrefresh" / "summary.json")
    (source / "_config.yml").write_text("title: test\n")
    (source / "index.html").write_text("---\n---\n" + page, encoding="utf-8")
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "JEKYLL_ENV": "production"}
    command = [jekyll, "build", "--safe", "--quiet", "-s", str(source), "-d", str(root / "out")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return (root / "out" / "index.html").read_text(encoding="utf-8")
