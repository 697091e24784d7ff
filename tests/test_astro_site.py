"""An Astro site built by the real `astro build` before and after `postrefresh run`: only the stats change."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
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

pytestmark = pytest.mark.timeout(240)
Cli = Callable[..., CliResult]
README = Path(__file__).resolve().parents[1] / "README.md"
REFRESHED = {"viewcount", "likeCount", "commentCount", "refreshed_at", "history"}
CABIN_ID, PASTA_ID, GONE_ID = "Tq7xK2mWp9s", "bX4n0Yq_7Rw", "Zz9GoneVid0"
POSTS = {
    "src/content/posts/cabin.md": f"""---
# Written by hand, as the seeds' posts were.
title: "Tiny house tour: 18 m² of reclaimed timber"
date: 2024-03-05T10:20:30+01:00
vid_id: "{CABIN_ID}"
channel: Cabins
viewcount: "1200" # counted by hand before the first refresh
likeCount: "34"
commentCount: 5
tags: ["cabin", "tour"]
---
A **cabin** made of [reclaimed timber](https://example.org).
""",
    "src/content/posts/pasta.md": f"""---
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
    "src/content/posts/gone.md": f"""---
title: "A video taken down since"
date: 2022-04-13
vid_id: "{GONE_ID}"
channel: News
viewcount: 7
likeCount: 1
---
Its page stays.
""",
}
STATS = "z.union([z.string(), z.number()])"  # quoted or not, as the post has it
SCHEMA_FIELDS = f"""    title: z.string(),
    date: z.coerce.date(),
    vid_id: z.string(),
    channel: z.string(),
    viewcount: {STATS},
    likeCount: {STATS},
    commentCount: {STATS}.optional(),
    tags: z.array(z.string()).default([]),
"""


def content_config(postrefresh_keys: str, strict: bool) -> str:
    """src/content.config.ts: the posts collection; its schema holds `postrefresh_keys` too."""
    return f"""import {{ defineCollection, z }} from "astro:content";
import {{ glob }} from "astro/loaders";

const posts = defineCollection({{
  loader: glob({{ pattern: "**/*.md", base: "./src/content/posts" }}),
  schema: z.object({{
{SCHEMA_FIELDS}{postrefresh_keys}  }}){".strict()" if strict else ""},
}});

export const collections = {{ posts }};
"""


def readme_example(name: str) -> str:
    """The code between the README's <!-- NAME --> and <!-- /NAME --> marks."""
    text = README.read_text(encoding="utf-8")
    example = text.split(f"<!-- {name} -->")[1].split(f"<!-- /{name} -->")[0]
    return example.split("```")[1].split("\n", 1)[1]


FILES = {
    "astro.config.mjs": 'import { defineConfig } from "astro/config";\n\nexport default defineConfig({});\n',
    # what Astro itself gives each post: its validated data, then its rendered body
    "src/pages/posts/[id].astro": f"""---
import {{ getCollection, render }} from "astro:content";

export async function getStaticPaths() {{
  const posts = await getCollection("posts");
  return posts.map((post) => ({{ params: {{ id: post.id }}, props: {{ post }} }}));
}}
const {{ post }} = Astro.props;
const {{ Content }} = await render(post);
---
<Fragment set:html={{JSON.stringify(post.data)}} />
{BODY}
<Content />
""",
    # the summary as a page imports it; a glob, so the site also builds before the first run
    "src/pages/index.astro": """---
const found = import.meta.glob("../data/postrefresh/summary.json", { eager: true, import: "default" });
const summary = Object.values(found)[0];
---
<Fragment set:html={summary ? JSON.stringify(summary) : "none"} />
""",
}


def make_site(folder: Path, postrefresh_keys: str, strict: bool) -> Path:
    """An Astro site of POSTS; a video missing once is marked unavailable (absent_runs = 1)."""
    files = {**FILES, **POSTS, "src/content.config.ts": content_config(postrefresh_keys, strict),
             "_postrefresh.toml": "absent_runs = 1\n"}
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
    use_node_modules(folder)
    return folder


@pytest.fixture(autouse=True)
def gone(sim: YouTubeSimulator) -> None:
    """GONE_ID's video is deleted from YouTube: its post gets `status`."""
    sim.config = dataclasses.replace(sim.config, deleted=frozenset({GONE_ID}))


@pytest.fixture
def astro_site(tmp_path: Path) -> Path:
    """An Astro site with a strict schema holding the keys the README says to add."""
    return make_site(tmp_path / "site", readme_example("astro-schema"), strict=True)


def astro_build(site: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """`astro build` into the site's dist/, then moved to `out`.

    In its site, as a user builds: the server chunks Astro writes there while it renders
    import packages (kleur) that only the site's node_modules resolves.
    """
    result = run_build([node_tool("astro"), "build", "--silent"], site)
    if result.returncode == 0:
        shutil.move(site / "dist", out)
    return result


def build(site: Path, out: Path) -> tuple[dict[str, tuple[dict[str, Any], str]], str]:
    """Build the site with `astro build` into `out`: each post's (data, body), and the home page's text."""
    built(astro_build(site, out))
    pages = built_pages(out, out.glob("posts/*/index.html"), prefix="<!DOCTYPE html>")
    return pages, (out / "index.html").read_text(encoding="utf-8").removeprefix("<!DOCTYPE html>")


def test_astro_sees_only_the_refreshed_stats_change(cli: Cli, astro_site: Path, tmp_path: Path) -> None:
    before, home = build(astro_site, tmp_path / "before")
    assert set(before) == {f"posts/{name}/index.html" for name in ("cabin", "pasta", "gone")}
    assert home == "none"
    result = cli("run", "--site", str(astro_site))
    assert result.code == 0, result.err
    assert "refreshed: 2" in result.out
    after, home = build(astro_site, tmp_path / "after")
    assert_only_refreshed_changed(before, after, REFRESHED, added=frozenset({"status"}))
    for page, vid in (("posts/cabin/index.html", CABIN_ID), ("posts/pasta/index.html", PASTA_ID)):
        data, old = after[page][0], before[page][0]
        truth = expected_fields(vid, 0)
        assert normalise(data["viewcount"]) == truth["statistics.viewCount"]
        assert normalise(data["likeCount"]) == truth["statistics.likeCount"]
        assert data["refreshed_at"]
        assert normalise(data["history"][0]["viewcount"]) == normalise(old["viewcount"])
        assert type(data["viewcount"]) is type(old["viewcount"])  # quoted stays a string, a number a number
        assert (tmp_path / "after" / "thumbnails" / f"{vid}.jpg").is_file()  # public/ is served at /
    assert after["posts/gone/index.html"][0]["status"] == "unavailable"
    summary = json.loads((astro_site / "src" / "data" / "postrefresh" / "summary.json").read_text())
    assert json.loads(home) == summary and summary["counts"]["videos"] == 3


def test_a_schema_without_postrefreshs_keys_drops_them_and_a_strict_one_fails_the_build(
        cli: Cli, tmp_path: Path) -> None:
    plain = make_site(tmp_path / "plain", "", strict=False)
    strict = make_site(tmp_path / "strict", "", strict=True)
    for site in (plain, strict):
        assert cli("run", "--site", str(site)).code == 0
    pages = build(plain, tmp_path / "plain-out")[0]
    data = pages["posts/cabin/index.html"][0]  # zod drops the keys its object does not name
    assert normalise(data["viewcount"]) == expected_fields(CABIN_ID, 0)["statistics.viewCount"]
    assert not {"refreshed_at", "history"} & set(data)
    assert "status" not in pages["posts/gone/index.html"][0]
    failed = astro_build(strict, tmp_path / "strict-out")
    assert failed.returncode != 0
    assert "Unrecognized key(s) in object: 'refreshed_at'" in failed.stdout + failed.stderr


def test_the_readme_astro_example_renders_the_summary(cli: Cli, astro_site: Path, tmp_path: Path) -> None:
    (astro_site / "src" / "pages" / "index.astro").write_text(readme_example("astro-example"))
    assert cli("run", "--site", str(astro_site)).code == 0
    summary = json.loads((astro_site / "src" / "data" / "postrefresh" / "summary.json").read_text())
    home = build(astro_site, tmp_path / "out")[1]
    assert len(summary["most_viewed"]) == 2
    for entry in summary["most_viewed"]:
        assert f'?v={entry["vid_id"]}">{entry["title"]}</a> ({entry["views"]} views)' in home


def test_history_csvs_in_astros_data_folder_neither_break_nor_join_the_build(
        cli: Cli, astro_site: Path, tmp_path: Path, sim: YouTubeSimulator) -> None:
    (astro_site / "_postrefresh.toml").write_text('history_mode = "data"\n')
    assert cli("run", "--site", str(astro_site)).code == 0
    sim.config = dataclasses.replace(sim.config, epoch=1)
    assert cli("run", "--site", str(astro_site)).code == 0
    csvs = sorted(p.name for p in (astro_site / "src" / "data" / "postrefresh").glob("*.csv"))
    assert csvs == [f"{CABIN_ID}.csv", f"{PASTA_ID}.csv"]
    pages, home = build(astro_site, tmp_path / "out")
    assert json.loads(home)["counts"]["videos"] == 3
    assert "history" not in pages["posts/cabin/index.html"][0]
    assert not list((tmp_path / "out").rglob("*.csv"))
