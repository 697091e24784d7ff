"""An Eleventy site built by the real Eleventy before and after `postrefresh run`: only the stats change."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CliResult
from tests.node_sites import built, node_tool, run_build, use_node_modules
from tests.site_builds import BODY, assert_only_refreshed_changed, built_pages
from worker.frontmatter.editor import normalise
from worker.simulator.server import YouTubeSimulator
from worker.simulator.truth import expected_fields

pytestmark = pytest.mark.timeout(180)
Cli = Callable[..., CliResult]
REFRESHED = {"viewcount", "likeCount", "commentCount", "refreshed_at", "history"}
# What Eleventy adds to every page's data beside its front matter (postrefresh: the _data folder)
NOT_FRONT_MATTER = {"content", "eleventy", "pkg", "page", "collections", "layout", "postrefresh"}
CABIN_ID, PASTA_ID = "Tq7xK2mWp9s", "bX4n0Yq_7Rw"
POSTS = {
    "posts/cabin.md": f"""---
# Written by hand, as the seeds' posts were.
title: "Tiny house tour: 18 m² of reclaimed timber"
date: 2024-03-05T10:20:30+01:00
vid_id: "{CABIN_ID}"
channel: Cabins
duration: PT48M40S
viewcount: "1200" # counted by hand before the first refresh
likeCount: "34"
commentCount: 5
tags: ["cabin", "tour"]
---
A **cabin** made of [reclaimed timber](https://example.org).

{{% if vid_id %}}Watch it: https://www.youtube.com/watch?v={{{{ vid_id }}}}{{% endif %}}
""",
    "posts/pasta.md": f"""---
title: "Homemade pasta, three ways"
date: 2023-01-15
vid_id: "{PASTA_ID}"
channel: "Small Kitchen Diaries"
viewcount: 10
likeCount: 2
tags: [food]
---
Flour, eggs, *patience*.
""",
    "about.md": "---\ntitle: About\n---\nNo video here.\n",
}
FILES = {
    "eleventy.config.js": 'module.exports = function (eleventyConfig) {\n'
                          '  eleventyConfig.addPassthroughCopy({ public: "/" });\n};\n',
    "posts/posts.json": '{ "layout": "post.11ty.js" }\n',
    "about.11tydata.json": '{ "layout": "post.11ty.js" }\n',
    # what Eleventy itself sees of each page: its front matter, then its rendered body
    "_includes/post.11ty.js": f"""const skip = new Set({json.dumps(sorted(NOT_FRONT_MATTER))});
module.exports = function (data) {{
  const front = Object.fromEntries(Object.entries(data).filter(([key]) => !skip.has(key)));
  return JSON.stringify(front) + "\\n{BODY}\\n" + data.content;
}};
""",
    # a template reading the summary as global data, as a theme would
    "index.njk": "{% if postrefresh.summary %}{{ postrefresh.summary | dump | safe }}"
                 "{% else %}none{% endif %}",
}


@pytest.fixture
def eleventy_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    for rel, text in {**FILES, **POSTS}.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text, encoding="utf-8")
    use_node_modules(site)  # hundreds of READMEs there: postrefresh's **/*.md must pass them by
    return site


def build(site: Path, out: Path) -> tuple[dict[str, tuple[dict[str, Any], str]], str]:
    """Build the site with Eleventy into `out`: each page's (front matter, body), and the home page's text."""
    built(run_build([node_tool("eleventy"), "--quiet", f"--output={out}"], site))
    return built_pages(out, out.glob("*/**/index.html")), (out / "index.html").read_text(encoding="utf-8")


def test_eleventy_sees_only_the_refreshed_stats_change(cli: Cli, eleventy_site: Path, tmp_path: Path) -> None:
    before, home = build(eleventy_site, tmp_path / "before")
    assert set(before) == {"posts/cabin/index.html", "posts/pasta/index.html", "about/index.html"}
    assert home == "none"
    assert f"?v={CABIN_ID}" in before["posts/cabin/index.html"][1]  # Liquid ran over the body
    result = cli("run", "--site", str(eleventy_site))
    assert result.code == 0, result.err
    assert "refreshed: 2" in result.out
    after, home = build(eleventy_site, tmp_path / "after")
    assert_only_refreshed_changed(before, after, REFRESHED)
    for page, vid in (("posts/cabin/index.html", CABIN_ID), ("posts/pasta/index.html", PASTA_ID)):
        front, old = after[page][0], before[page][0]
        truth = expected_fields(vid, 0)
        assert normalise(front["viewcount"]) == truth["statistics.viewCount"]
        assert normalise(front["likeCount"]) == truth["statistics.likeCount"]
        assert front["refreshed_at"]
        assert normalise(front["history"][0]["viewcount"]) == normalise(old["viewcount"])
        assert type(front["viewcount"]) is type(old["viewcount"])  # quoted stays a string, a number a number
        assert (tmp_path / "after" / "thumbnails" / f"{vid}.jpg").is_file()  # public/ copied to /
    assert "refreshed_at" not in after["about/index.html"][0]
    summary = json.loads((eleventy_site / "_data" / "postrefresh" / "summary.json").read_text())
    assert json.loads(home) == summary and summary["counts"]["videos"] == 2


def test_history_csvs_in_eleventys_data_folder_neither_break_nor_join_the_build(
        cli: Cli, eleventy_site: Path, tmp_path: Path, sim: YouTubeSimulator) -> None:
    (eleventy_site / "_postrefresh.toml").write_text('history_mode = "data"\n')
    assert cli("run", "--site", str(eleventy_site)).code == 0
    sim.config = dataclasses.replace(sim.config, epoch=1)
    assert cli("run", "--site", str(eleventy_site)).code == 0
    csvs = sorted(p.name for p in (eleventy_site / "_data" / "postrefresh").glob("*.csv"))
    assert csvs == [f"{CABIN_ID}.csv", f"{PASTA_ID}.csv"]
    pages, home = build(eleventy_site, tmp_path / "out")
    assert json.loads(home)["counts"]["videos"] == 2
    assert "history" not in pages["posts/cabin/index.html"][0]
    assert not list((tmp_path / "out").rglob("*.csv"))

