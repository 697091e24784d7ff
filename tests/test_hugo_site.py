"""A Hugo site built by Debian's `hugo` before and after `postrefresh run`: only the stats change."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.compose_fixtures import unavailable
from tests.conftest import CliResult, snapshot
from tests.site_builds import BODY, assert_only_refreshed_changed, built_pages
from worker.frontmatter.editor import normalise
from worker.simulator.server import YouTubeSimulator
from worker.simulator.truth import expected_fields

pytestmark = pytest.mark.timeout(120)
Cli = Callable[..., CliResult]
README = Path(__file__).resolve().parents[1] / "README.md"
REFRESHED = {"viewcount", "likecount", "commentcount", "refreshed_at", "history"}  # Hugo lowercases keys
TOML_ID, YAML_ID = "Tq7xK2mWp9s", "bX4n0Yq_7Rw"
POSTS = {
    "content/posts/cabin.md": f"""+++
# Made by `hugo new`, then edited by hand.
title = "Tiny house tour"
date = 2024-03-05T10:20:30+01:00
draft = false
vid_id = '{TOML_ID}'
channel = "Cabins"
duration = "PT48M40S"
viewcount = 1200  # updated by postrefresh
likeCount = "34"
commentCount = 5
tags = ["cabin", "tour"]

[params]
colour = "green"
+++
A **cabin** made of [reclaimed timber](https://example.org).
""",
    "content/posts/pasta.md": f"""---
title: "Homemade pasta: three ways"
date: 2023-01-15
vid_id: "{YAML_ID}"
channel: Kitchen
duration: PT12M
viewcount: 10
likeCount: 2
commentCount: 1
tags: [food]
---
Flour, eggs, *patience*.
""",
    "content/about.md": "+++\ntitle = \"About\"\n+++\nNo video here.\n",
}
CONFIG = """baseURL = "https://example.org/"
title = "A Hugo site"
disableKinds = ["taxonomy", "term", "RSS", "sitemap", "robotsTXT", "404", "section"]
"""
LAYOUTS = {
    # what Hugo itself sees of each page: its parameters, then its rendered body
    "layouts/_default/single.html": "{{ .Params | jsonify }}\n" + BODY + "\n{{ .Content }}",
    # a template reading the summary as site data, as a theme would
    "layouts/index.html": "{{ with site.Data.postrefresh.summary }}{{ . | jsonify }}{{ else }}none{{ end }}",
}


@pytest.fixture
def hugo_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    for rel, text in {"hugo.toml": CONFIG, **LAYOUTS, **POSTS}.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text, encoding="utf-8")
    return site


def build(site: Path, out: Path) -> tuple[dict[str, tuple[dict[str, Any], str]], str]:
    """Build the site with Hugo into `out`: each page's (params, body), and the home page's text."""
    hugo = shutil.which("hugo")
    if hugo is None:
        unavailable("hugo is not installed: scripts/test-tools installs Debian's hugo")
    command = [hugo, "--quiet", "--noBuildLock", "--source", str(site), "--destination", str(out),
               "--cacheDir", str(out.parent / "hugo-cache")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "HUGO_ENVIRONMENT": "production"})
    assert result.returncode == 0, result.stderr
    return built_pages(out, out.glob("*/**/index.html")), (out / "index.html").read_text(encoding="utf-8")


def test_hugo_sees_only_the_refreshed_stats_change(cli: Cli, hugo_site: Path, tmp_path: Path) -> None:
    before, home = build(hugo_site, tmp_path / "before")
    assert set(before) == {"posts/cabin/index.html", "posts/pasta/index.html", "about/index.html"}
    assert home == "none"
    result = cli("run", "--site", str(hugo_site))
    assert result.code == 0, result.err
    assert "refreshed: 2" in result.out
    after, home = build(hugo_site, tmp_path / "after")
    assert_only_refreshed_changed(before, after, REFRESHED)
    for page, vid in (("posts/cabin/index.html", TOML_ID), ("posts/pasta/index.html", YAML_ID)):
        params = after[page][0]
        truth = expected_fields(vid, 0)
        assert normalise(params["viewcount"]) == truth["statistics.viewCount"]
        assert params["refreshed_at"] and params["history"][0]["viewcount"] in ("1200", "10")
        old = before[page][0]
        assert {k: type(params[k]) for k in ("viewcount", "likecount")} == {
            k: type(old[k]) for k in ("viewcount", "likecount")}  # integers stay integers, strings strings
        assert (tmp_path / "after" / "thumbnails" / f"{vid}.jpg").is_file()  # static/ is served at /
    assert "refreshed_at" not in after["about/index.html"][0]
    summary = json.loads((hugo_site / "data" / "postrefresh" / "summary.json").read_text())
    assert json.loads(home) == summary and summary["counts"]["videos"] == 2


def test_the_readme_hugo_example_renders_the_summary(cli: Cli, hugo_site: Path, tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    example = text.split("<!-- hugo-example -->")[1].split("<!-- /hugo-example -->")[0]
    (hugo_site / "layouts" / "index.html").write_text(example.split("```")[1].split("\n", 1)[1])
    assert cli("run", "--site", str(hugo_site)).code == 0
    summary = json.loads((hugo_site / "data" / "postrefresh" / "summary.json").read_text())
    home = build(hugo_site, tmp_path / "out")[1]
    assert len(summary["most_viewed"]) == 2
    for entry in summary["most_viewed"]:
        assert f'?v={entry["vid_id"]}">{entry["title"]}</a> ({entry["views"]} views)' in home


def test_history_csvs_go_where_hugo_builds_without_reading_them(cli: Cli, hugo_site: Path, tmp_path: Path,
                                                              sim: YouTubeSimulator) -> None:
    (hugo_site / "_postrefresh.toml").write_text('history_mode = "data"\n')
    assert cli("run", "--site", str(hugo_site)).code == 0
    sim.config = dataclasses.replace(sim.config, epoch=1)
    assert cli("run", "--site", str(hugo_site)).code == 0
    csvs = sorted(p.relative_to(hugo_site).as_posix() for p in hugo_site.rglob("*.csv"))
    assert csvs == [f"assets/postrefresh/{TOML_ID}.csv", f"assets/postrefresh/{YAML_ID}.csv"]
    home = build(hugo_site, tmp_path / "out")[1]
    assert json.loads(home)["counts"]["videos"] == 2
    assert not list((tmp_path / "out").rglob("*.csv"))  # assets/ is published only when a template asks


def test_a_second_run_leaves_the_hugo_site_byte_identical(cli: Cli, hugo_site: Path) -> None:
    assert cli("run", "--site", str(hugo_site)).code == 0
    before = snapshot(hugo_site)
    again = cli("run", "--site", str(hugo_site))
    assert again.code == 0 and "refreshed: 0" in again.out
    assert snapshot(hugo_site) == before
