"""A count YouTube stops giving (likes hidden, comments off) is shown as unknown, never as current.

End to end against the simulator, whose ids at TOGGLING_BELOW hide a count at odd epochs and
show it at even ones, so one test sees a count hidden and shown again.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.gen_posts import generate_site
from tests.conftest import CliResult
from worker.frontmatter.document import read_front_matter, split_post
from worker.refresh.changes import plan_changes
from worker.settings import Settings
from worker.simulator.server import YouTubeSimulator
from worker.simulator.truth import expected_fields, has_comments_off, has_hidden_likes

pytestmark = pytest.mark.timeout(60)
Cli = Callable[..., CliResult]


def front(path: Path) -> dict[str, object]:
    return read_front_matter(split_post(path.read_bytes()).front_text()).mapping


def post_of(site: Path, vid_id: str) -> Path:
    return next(p for p in sorted(site.glob("_posts/*.md")) if f'vid_id: "{vid_id}"' in p.read_text())


def run(cli: Cli, site: Path, sim: YouTubeSimulator, epoch: int) -> None:
    sim.config = dataclasses.replace(sim.config, epoch=epoch)
    result = cli("run", "--site", str(site), "--no-thumbnails")
    assert result.code == 0, result.err


@pytest.fixture
def generated(tmp_path: Path) -> tuple[Path, list[str]]:
    site = tmp_path / "site"
    return site, generate_site(site, 500)  # seed 0: 6 ids toggle likes, 2 toggle comments


def toggling(ids: list[str], hidden: Callable[[str, int], bool]) -> str:
    return next(i for i in ids if not hidden(i, 0) and hidden(i, 1) and not hidden(i, 2))


def test_hidden_likes_become_empty_go_to_history_and_come_back(
        cli: Cli, sim: YouTubeSimulator, generated: tuple[Path, list[str]]) -> None:
    site, ids = generated
    vid = toggling(ids, has_hidden_likes)
    post = post_of(site, vid)
    run(cli, site, sim, 0)
    shown = front(post)
    assert shown["likeCount"] == expected_fields(vid, 0)["statistics.likeCount"]
    run(cli, site, sim, 1)
    hidden = front(post)
    assert hidden["likeCount"] == ""  # unknown, in the file's own type; never 0, never frozen
    assert hidden["viewcount"] == expected_fields(vid, 1)["statistics.viewCount"]
    last = hidden["history"][-1]  # type: ignore[index]
    assert last["likeCount"] == shown["likeCount"] and last["at"] == shown["refreshed_at"]
    assert re.search(rb'^likeCount: ""\r\n', post.read_bytes(), re.M)
    run(cli, site, sim, 2)
    assert front(post)["likeCount"] == expected_fields(vid, 2)["statistics.likeCount"]


def test_a_bare_number_is_removed_while_hidden_and_a_post_without_comments_gets_none(
        cli: Cli, sim: YouTubeSimulator, generated: tuple[Path, list[str]]) -> None:
    site, ids = generated
    vid = toggling(ids, has_comments_off)
    post = post_of(site, vid)
    never = post_of(site, next(i for i in ids if has_comments_off(i, 0)))
    run(cli, site, sim, 0)
    assert "commentCount" not in front(never)  # the video has no comments: no key is invented
    count = front(post)["commentCount"]
    quoted, bare = f'commentCount: "{count}"'.encode(), f"commentCount: {count}".encode()
    post.write_bytes(post.read_bytes().replace(quoted, bare))
    run(cli, site, sim, 1)
    hidden = front(post)
    assert "commentCount" not in hidden  # a bare number cannot say "unknown": absent, never 0
    assert hidden["history"][-1]["commentCount"] == str(count)  # type: ignore[index]
    run(cli, site, sim, 2)
    assert front(post)["commentCount"] == expected_fields(vid, 2)["statistics.commentCount"]
    assert "commentCount" not in front(never)


@pytest.mark.parametrize(("value", "change"), [
    ("1234", {"likeCount": ""}), (1234, {"likeCount": None}), ("", {}), (None, {}),
])
def test_an_omitted_count_is_planned_as_unknown_in_the_values_type(value: object,
                                                                   change: dict[str, object]) -> None:
    video = {"statistics.viewCount": "10"}
    planned = plan_changes({"viewcount": "10", "likeCount": value}, video, 0, Settings())
    assert planned == change
    assert plan_changes({"viewcount": "10"}, video, 0, Settings()) == {}  # never added
