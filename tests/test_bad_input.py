"""Bad posts get one clear line each, stay byte-identical, and the run goes on (exit 1)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import SEEDS, CliResult
from tests.test_run import assert_matches_truth, mapping

pytestmark = pytest.mark.timeout(60)
Cli = Callable[..., CliResult]

GOOD_FRONT = '---\r\nvid_id: "{vid}"\r\nviewcount: "1"\r\nlikeCount: "1"\r\n---\r\n'
BAD_POSTS: dict[str, tuple[bytes, str]] = {
    "empty.md": (b"", "empty file"),
    "no-front-matter.md": (b"Just a body.\n", "no front matter"),
    "unterminated.md": (b'---\nvid_id: "QkqV7TrhN-c"\nviewcount: "1"\n', "not closed"),
    "invalid-yaml.md": (b'---\nvid_id: "QkqV7TrhN-c\nviewcount: [1\n---\n', "invalid YAML"),
    "toml.md": (b'+++\nvid_id = "QkqV7TrhN-c"\n+++\n', "TOML"),
    "dotdot-id.md": (b'---\nvid_id: "../../../ab"\n---\n', "not an 11-character YouTube id"),
    "spaces-id.md": (b'---\nvid_id: "a b c d e f"\n---\n', "not an 11-character YouTube id"),
    "binary.md": (bytes(range(256)) * 4, "no front matter"),
    "python-tag.md": (b'---\nvid_id: !!python/object/apply:os.system ["id"]\n---\n', "invalid YAML"),
    "not-mapping.md": (b"---\n- QkqV7TrhN-c\n---\n", "not a mapping"),
    "alias-bomb.md": (b'---\na: &a ["x","x"]\nb: [*a,*a]\nvid_id: "QkqV7TrhN-c"\n---\n', "aliases"),
    "multiline-stat.md": (b'---\nvid_id: "QkqV7TrhN-c"\nviewcount: |\n  12\n---\n', "multi-line"),
}


@pytest.fixture
def messy_site(site: Path, tmp_path: Path) -> Path:
    posts = site / "_posts"
    for name, (data, _) in BAD_POSTS.items():
        (posts / name).write_bytes(data)
    (posts / "dir.md").mkdir()
    outside = tmp_path / "outside.md"
    outside.write_bytes(GOOD_FRONT.format(vid="QkqV7TrhN-c").encode())
    (posts / "symlink-out.md").symlink_to(outside)
    (posts / "no-vid-id.md").write_bytes(b"---\ntitle: A plain post\n---\nHello\n")
    return site


def test_each_bad_post_is_reported_once_left_identical_and_the_rest_is_refreshed(
        cli: Cli, messy_site: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    posts = messy_site / "_posts"
    before = {p.name: p.read_bytes() for p in posts.iterdir() if p.is_file()}
    outside_before = (tmp_path / "outside.md").read_bytes()
    result = cli("run", "--site", str(messy_site), "--no-thumbnails", "--json")
    assert result.code == 1
    summary = json.loads(result.out)
    reasons = {Path(item["path"]).name: item["reason"] for item in summary["bad"]}
    for name, (_, reason) in BAD_POSTS.items():
        assert reason in reasons[name], (name, reasons.get(name))
        assert (posts / name).read_bytes() == before[name]
    assert "directory" in reasons["dir.md"]
    assert "outside the site" in reasons["symlink-out.md"]
    assert len(summary["bad"]) == len(BAD_POSTS) + 2
    assert (tmp_path / "outside.md").read_bytes() == outside_before
    assert (posts / "no-vid-id.md").read_bytes() == before["no-vid-id.md"]
    assert summary["not_video_posts"] == 2 and summary["refreshed"] == 12
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("bad post")]
    assert len(lines) == len(BAD_POSTS) + 2 and all("\n" not in line for line in lines)
    good = [p for p in (SEEDS / "_posts").rglob("*.m*") if "vid_id" in mapping(p)]
    for seed in good:
        assert_matches_truth(messy_site / seed.relative_to(SEEDS))


def test_odd_but_valid_posts_keep_their_oddity(cli: Cli, site: Path) -> None:
    big = site / "_posts/2024-01-01-big.md"
    body = b"{% raw %}" + b"x" * (5 << 20) + b"{% endraw %}\r\n"
    big.write_bytes(GOOD_FRONT.format(vid="AbCdEfGhIjK").encode() + body)
    bom = site / "_posts/0001-01-01-tiny-house-tour-18-m-cabin-built-from-reclaimed-timber-walk-through-of.md"
    unquoted = site / "_posts/2023-02-11-rock-climbing-for-beginners.md"
    comments = site / "_posts/2023-01-15-homemade-pasta-three-ways.md"
    comment_lines = [ln for ln in comments.read_bytes().splitlines() if b"#" in ln]
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    assert big.read_bytes().endswith(body)
    assert_matches_truth(big)
    assert bom.read_bytes().startswith(b"\xef\xbb\xbf---\r\n")
    assert all(line.endswith(b"\r") for line in bom.read_bytes().split(b"\n")[:-1])
    assert isinstance(mapping(unquoted)["viewcount"], int)
    after_comments = comments.read_bytes().splitlines()
    for line in comment_lines:
        key = line.split(b":")[0]
        assert any(ln.split(b":")[0] == key and b"#" in ln for ln in after_comments), line


def test_a_post_edited_by_a_person_before_the_write_keeps_the_edit(site: Path) -> None:
    from worker.settings import Settings
    from worker.update import update_post

    rel = "_posts/2022-04-13-kremlin-admits-significant-losses.md"
    path = site / rel
    path.write_bytes(path.read_bytes().replace(b"DW News\"\n---", b"DW News (edited)\"\n---"))
    video = {"statistics.viewCount": "999", "statistics.likeCount": "5859"}
    outcome = update_post(site, rel, "QkqV7TrhN-c", video, 0, Settings(), "2026-11-24T00:00:00Z")
    assert outcome.status == "refreshed"
    values = mapping(path)
    assert values["channel"] == "DW News (edited)" and values["viewcount"] == "999"


def test_a_post_deleted_while_queued_is_reported_as_gone(site: Path) -> None:
    from worker.settings import Settings
    from worker.update import update_post

    rel = "_posts/2022-04-13-kremlin-admits-significant-losses.md"
    os.remove(site / rel)
    outcome = update_post(site, rel, "QkqV7TrhN-c", {}, 0, Settings(), "2026-11-24T00:00:00Z")
    assert outcome.status == "gone"
    assert not (site / rel).exists()
