"""The site's generator: recognised from its marker file, its defaults under every given setting."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.compose_fixtures import unavailable
from tests.conftest import CliResult
from tests.site_builds import BODY, assert_only_refreshed_changed, built_pages
from worker.errors import ConfigError, PostFormatError
from worker.frontmatter.editor import normalise
from worker.refresh.thumbnails import thumbnail_url
from worker.settings import Settings, load_settings
from worker.simulator.truth import expected_fields
from worker.site.generators import detect, site_defaults
from worker.site.posts import discover, parse_post, video_id_of

pytestmark = pytest.mark.timeout(60)
Cli = Callable[..., CliResult]
VID = "QkqV7TrhN-c"


def settings_for(site: Path, **flags: object) -> Settings:
    return load_settings({"site": str(site), **flags}, {}, site_defaults=site_defaults)


@pytest.mark.parametrize(("marker", "generator"), [
    ("_config.yml", "jekyll"), ("hugo.toml", "hugo"), ("hugo.yaml", "hugo"), ("config.toml", "hugo"),
    ("config.json", "hugo"), ("eleventy.config.mjs", "eleventy"), (".eleventy.js", "eleventy"),
    ("astro.config.mjs", "astro"), ("astro.config.ts", "astro"),
])
def test_the_marker_file_names_the_generator(tmp_path: Path, marker: str, generator: str) -> None:
    (tmp_path / marker).write_text("")
    assert detect(tmp_path) == generator


def test_a_site_without_a_marker_is_jekyll_with_the_defaults_unchanged(tmp_path: Path) -> None:
    assert detect(tmp_path) == "jekyll"
    assert settings_for(tmp_path) == load_settings({"site": str(tmp_path)}, {})


def test_two_markers_the_documented_order_decides_and_a_warning_names_both(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "_config.yml").write_text("")
    (tmp_path / "hugo.toml").write_text("")
    with caplog.at_level(logging.WARNING):
        assert detect(tmp_path) == "hugo"
    assert "hugo (hugo.toml)" in caplog.text and "jekyll (_config.yml)" in caplog.text


def test_a_marker_that_is_a_folder_is_no_marker(tmp_path: Path) -> None:
    (tmp_path / "config.toml").mkdir()
    assert detect(tmp_path) == "jekyll"


@pytest.mark.parametrize(("generator", "globs", "data", "hist", "thumbs", "url"), [
    ("jekyll", ("_posts/**/*.md", "_posts/**/*.markdown"), "_data/postrefresh", "_data/postrefresh",
     "assets/thumbnails", "/assets/thumbnails/"),
    ("hugo", ("content/**/*.md",), "data/postrefresh", "assets/postrefresh", "static/thumbnails",
     "/thumbnails/"),
    ("eleventy", ("**/*.md",), "_data/postrefresh", "_data/postrefresh", "public/thumbnails", "/thumbnails/"),
    ("astro", ("src/content/**/*.md", "src/content/**/*.mdx"), "src/data/postrefresh",
     "src/data/postrefresh", "public/thumbnails", "/thumbnails/"),
])
def test_each_generator_brings_its_paths(tmp_path: Path, generator: str, globs: tuple[str, ...], data: str,
                                         hist: str, thumbs: str, url: str) -> None:
    settings = settings_for(tmp_path, generator=generator)
    assert settings.site.generator == generator
    site = settings.site
    assert (site.posts_globs, site.data_dir, site.history_dir) == (globs, data, hist)
    assert (settings.thumbnails.dir, settings.thumbnail_public_path) == (thumbs, url)
    assert thumbnail_url(settings, VID) == f"{url}{VID}.jpg"


def test_every_default_of_a_generator_is_overridden_by_the_site_file(tmp_path: Path) -> None:
    (tmp_path / "hugo.toml").write_text("")
    (tmp_path / "_postrefresh.toml").write_text(
        'posts_globs = ["posts/*.md"]\ndata_dir = "data/stats"\nhistory_dir = "assets/h"\n'
        'thumbnail_dir = "static/img/yt"\n')
    settings = settings_for(tmp_path)
    assert settings.site.posts_globs == ("posts/*.md",)
    assert (settings.site.data_dir, settings.site.history_dir) == ("data/stats", "assets/h")
    # a thumbnail folder under Hugo's static/ is served from the site's root: its URL follows
    assert (settings.thumbnails.dir, settings.thumbnail_public_path) == ("static/img/yt", "/img/yt/")


def test_the_public_path_is_a_setting_too(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, generator="astro", thumbnail_public_path="/media/yt")
    assert thumbnail_url(settings, VID) == f"/media/yt/{VID}.jpg"


def test_an_unknown_generator_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    (tmp_path / "_postrefresh.toml").write_text('generator = "gatsby"\n')
    with pytest.raises(ConfigError, match=r"_postrefresh.toml: generator = 'gatsby': must be one of "
                                          r"jekyll, hugo, eleventy, astro"):
        settings_for(tmp_path)


def test_eleventy_posts_are_searched_everywhere_but_node_modules_and_the_built_site(tmp_path: Path) -> None:
    for rel in ("posts/a.md", "README.md", "node_modules/pkg/README.md", "_site/posts/a.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert sorted(discover(tmp_path, settings_for(tmp_path, generator="eleventy").site.posts_globs)) == [
        "README.md", "posts/a.md"]


@pytest.mark.parametrize("key", ["vid_id", "youtube_id", "video_id", "youtube"])
def test_the_id_is_found_under_any_usual_key(key: str) -> None:
    post = parse_post("p.md", f"---\ntitle: t\n{key}: {VID}\n---\nbody\n".encode())
    assert post is not None and post.vid_id == VID


def test_the_first_usual_key_present_wins() -> None:
    assert video_id_of({"youtube": "x", "vid_id": VID}, None) == ("vid_id", VID)


def test_a_dotted_id_key_reads_a_table() -> None:
    data = f'+++\ntitle = "t"\n[params]\nvideo_id = "{VID}"\n+++\nbody\n'.encode()
    assert parse_post("p.md", data) is None  # not at the top: not found without id_key
    post = parse_post("p.md", data, "params.video_id")
    assert post is not None and post.vid_id == VID


def test_a_set_id_key_is_the_only_key_read() -> None:
    assert parse_post("p.md", f"---\nvid_id: {VID}\n---\n".encode(), "youtube") is None


def test_a_bad_id_under_another_key_says_to_set_id_key() -> None:
    with pytest.raises(PostFormatError, match=r"youtube 'https://youtu.be/x' is not an 11-character "
                                              r"YouTube id \(set id_key"):
        parse_post("p.md", b"---\nyoutube: https://youtu.be/x\n---\n")


def test_a_hugo_site_without_content_is_refused_naming_its_folder(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "hugo.toml").write_text("")
    result = cli("run", "--site", str(tmp_path))
    assert result.code != 0
    assert f"{tmp_path} is not a Hugo site: it has no content/ folder" in result.err


JEKYLL_POSTS = {
    "_posts/2023-01-15-pasta.md": """---
title: "Homemade pasta: three ways"
vid_id: "bX4n0Yq_7Rw"
channel: Kitchen
duration: PT12M
viewcount: 10
likeCount: "2"
commentCount: 1
tags: [food]
---
Flour, eggs, *patience*.
""",
    "_posts/2024-03-05-cabin.md": """---
title: Tiny house tour  # a comment stays
vid_id: 'Tq7xK2mWp9s'
channel: Cabins
duration: PT48M40S
viewcount: 1200
---
A **cabin** made of [reclaimed timber](https://example.org).
""",
    "about.md": "---\ntitle: About\nlayout: post\n---\nNo video here.\n",
}
JEKYLL_REFRESHED = {"viewcount", "likeCount", "commentCount", "refreshed_at", "history",
                    "next", "previous"}  # the neighbours are pages of their own, compared there


def jekyll_pages(site: Path, out: Path) -> dict[str, tuple[dict[str, Any], str]]:
    """Build `site` with Debian's jekyll; each page's (what Liquid sees of `page`, rendered body)."""
    jekyll = shutil.which("jekyll")
    if jekyll is None:
        unavailable("jekyll is not installed: scripts/test-tools installs Debian's jekyll")
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "JEKYLL_ENV": "production"}
    command = [jekyll, "build", "--safe", "--quiet", "-s", str(site), "-d", str(out)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return built_pages(out, out.rglob("*.html"))


def test_jekyll_sees_only_the_refreshed_stats_change(cli: Cli, tmp_path: Path) -> None:
    site = tmp_path / "site"
    files = {"_config.yml": "title: test\ndefaults: [{scope: {path: ''}, values: {layout: post}}]\n",
             # what Liquid sees of each page, then its rendered body
             "_layouts/post.html": "{{ page | jsonify }}\n" + BODY + "\n{{ content }}", **JEKYLL_POSTS}
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text, encoding="utf-8")
    before = jekyll_pages(site, tmp_path / "before")
    assert len(before) == 3 and sum("vid_id" in params for params, _ in before.values()) == 2
    result = cli("run", "--site", str(site))
    assert result.code == 0 and "refreshed: 2" in result.out, result.err
    after = jekyll_pages(site, tmp_path / "after")
    assert_only_refreshed_changed(before, after, JEKYLL_REFRESHED)
    for page, (params, _) in before.items():
        new_params = after[page][0]
        if "vid_id" in params:
            truth = expected_fields(params["vid_id"], 0)
            assert normalise(new_params["viewcount"]) == truth["statistics.viewCount"], page
            assert new_params["refreshed_at"], page
