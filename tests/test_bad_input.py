"""Bad posts get one clear line each, stay byte-identical, and the run goes on (exit 1)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.celery_fixtures import redis_client, redis_url
from tests.conftest import SEEDS, CliResult
from tests.simulator_fixtures import API_KEY
from tests.test_run import assert_matches_truth, mapping
from worker.simulator.server import YouTubeSimulator

__all__ = ["redis_client", "redis_url"]  # fixtures used below
pytestmark = pytest.mark.timeout(60)
Cli = Callable[..., CliResult]

GOOD_FRONT = '---\r\nvid_id: "{vid}"\r\nviewcount: "1"\r\nlikeCount: "1"\r\n---\r\n'
BAD_POSTS: dict[str, tuple[bytes, str]] = {
    "empty.md": (b"", "empty file"),
    "no-front-matter.md": (b"Just a body.\n", "no front matter"),
    "unterminated.md": (b'---\nvid_id: "QkqV7TrhN-c"\nviewcount: "1"\n', "not closed"),
    "invalid-yaml.md": (b'---\nvid_id: "QkqV7TrhN-c\nviewcount: [1\n---\n', "invalid YAML"),
    # TOML front matter is read now (tests/test_toml_frontmatter.py); broken TOML is bad input.
    "invalid-toml.md": (b'+++\nvid_id = "QkqV7TrhN-c"\nviewcount = \n+++\n', "invalid TOML at line 3"),
    "json.md": (b'{\n  "vid_id": "QkqV7TrhN-c"\n}\n', "JSON front matter is not supported"),
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
    from worker.refresh.write import PostWriter, WriteRequest
    from worker.settings import Settings

    rel = "_posts/2022-04-13-kremlin-admits-significant-losses.md"
    path = site / rel
    path.write_bytes(path.read_bytes().replace(b"DW News\"\n---", b"DW News (edited)\"\n---"))
    video = {"statistics.viewCount": "999", "statistics.likeCount": "5859"}
    writer = PostWriter(site, Settings(), "2026-11-24T00:00:00Z")
    outcome = writer.write(WriteRequest(rel, "QkqV7TrhN-c", video, 0))
    assert outcome.status == "refreshed"
    values = mapping(path)
    assert values["channel"] == "DW News (edited)" and values["viewcount"] == "999"


def test_a_post_deleted_while_queued_is_reported_as_gone(site: Path) -> None:
    from worker.refresh.write import PostWriter, WriteRequest
    from worker.settings import Settings

    rel = "_posts/2022-04-13-kremlin-admits-significant-losses.md"
    os.remove(site / rel)
    writer = PostWriter(site, Settings(), "2026-11-24T00:00:00Z")
    outcome = writer.write(WriteRequest(rel, "QkqV7TrhN-c", {}, 0))
    assert outcome.status == "gone"
    assert not (site / rel).exists()


# What is not a regular file under _posts, with the words its line must hold.
SPECIAL = {
    "fifo.md": "named pipe",
    "zero.md": "outside the site",  # a symlink to /dev/zero
    "socket.md": "socket",
    "dangling.md": "dangling",
    "out.md": "outside the site",
    "loop.md": "symlink loop",
    "folder.md": "directory",
    "huge.md": "larger than the 10 MiB",
}


@pytest.fixture
def special_site(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The seed site plus, under _posts, every kind of entry that must never be read."""
    posts = site / "_posts"
    os.mkfifo(posts / "fifo.md")
    (posts / "zero.md").symlink_to("/dev/zero")
    with monkeypatch.context() as here:  # a socket's path must be short: bind it by its name
        here.chdir(posts)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind("socket.md")
    (posts / "dangling.md").symlink_to(posts / "nowhere.md")
    outside = tmp_path / "outside.md"
    outside.write_bytes(GOOD_FRONT.format(vid="QkqV7TrhN-c").encode())
    (posts / "out.md").symlink_to(outside)
    (posts / "loop.md").symlink_to("loop.md")
    (posts / "folder.md").mkdir()
    with open(posts / "huge.md", "wb") as fh:  # sparse: 11 MiB on paper, nothing on disk
        fh.write(GOOD_FRONT.format(vid="AbCdEfGhIjK").encode())
        fh.truncate(11 << 20)
    if os.geteuid() == 0:  # /dev/zero itself, made in the site (only root may mknod)
        os.mknod(posts / "device.md", 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    drafts = site / "drafts"
    drafts.mkdir()
    (drafts / "linked.md").write_bytes(GOOD_FRONT.format(vid="LinkedPost1").encode())
    (posts / "linked.md").symlink_to(drafts / "linked.md")  # inside the site: a post like any
    return site


def special_names(site: Path) -> dict[str, str]:
    return {**SPECIAL, **({"device.md": "character device"} if (site / "_posts/device.md").exists() else {})}


def sim_env(sim: YouTubeSimulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTREFRESH", "YOUTUBE"))}
    return {**env, "YOUTUBE_API_KEY": API_KEY, "YOUTUBE_API_URL": f"{sim.url}/youtube/v3",
            "YOUTUBE_THUMBNAIL_URL": sim.url}


def one_line_each(text: str, expected: dict[str, str]) -> None:
    for name, reason in expected.items():
        lines = [line for line in text.splitlines() if f"bad post _posts/{name}:" in line]
        assert len(lines) == 1 and reason in lines[0], (name, lines)


def test_run_never_opens_what_is_not_a_regular_file_and_refreshes_the_rest(
        special_site: Path, sim: YouTubeSimulator) -> None:
    result = subprocess.run([sys.executable, "-m", "worker", "run", "--site", str(special_site),
                             "--no-thumbnails", "--json"], env=sim_env(sim), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    expected = special_names(special_site)
    one_line_each(result.stderr, expected)
    summary = json.loads(result.stdout)
    assert {Path(item["path"]).name for item in summary["bad"]} == set(expected)
    assert summary["refreshed"] == 13  # the 12 seed video posts and the one linked inside the site
    for seed in (p for p in (SEEDS / "_posts").rglob("*.m*") if "vid_id" in mapping(p)):
        assert_matches_truth(special_site / seed.relative_to(SEEDS))
    assert mapping(special_site / "drafts/linked.md")["viewcount"] != "1"


def test_report_never_opens_what_is_not_a_regular_file(special_site: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = subprocess.run([sys.executable, "-m", "worker", "report", "--site", str(special_site),
                             "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    one_line_each(result.stderr, special_names(special_site))
    assert out.is_file() and "13 videos" in result.stdout


def test_enqueue_dry_run_never_opens_what_is_not_a_regular_file(
        special_site: Path, redis_url: str, redis_client: redis.Redis) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTREFRESH", "YOUTUBE", "CELERY"))}
    result = subprocess.run([sys.executable, "-m", "worker", "enqueue", "--site", str(special_site),
                             "--all", "--dry-run"], env={**env, "REDIS_URL": redis_url},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    one_line_each(result.stdout, special_names(special_site))
    assert "would queue: 13 " in result.stdout and redis_client.dbsize() == 0


@pytest.mark.timeout(30)
def test_the_scan_never_opens_what_is_not_a_regular_file(special_site: Path) -> None:
    from worker.refresh.scheduler import due_posts
    from worker.settings import Settings
    from worker.site.state import SiteState

    with SiteState(special_site) as state:
        due = list(due_posts(special_site, Settings(), state, time.time()))
    assert len(due) == 13


@pytest.mark.timeout(60)
def test_history_never_opens_what_is_not_a_regular_file(special_site: Path) -> None:
    # a video no post has: history reads every entry under _posts before it says so
    result = subprocess.run([sys.executable, "-m", "worker", "history", "--site", str(special_site),
                             "AbCdEfGhIjK"], capture_output=True, text=True, timeout=50)
    assert result.returncode == 2 and "no post in" in result.stderr, result.stderr
    shown = subprocess.run([sys.executable, "-m", "worker", "history", "--site", str(special_site),
                            "LinkedPost1"], capture_output=True, text=True, timeout=50)
    assert shown.returncode == 0 and "viewcount" in shown.stdout, shown.stderr


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_post_replaced_by_what_is_not_a_regular_file_while_queued_is_never_opened(
        site: Path, kind: str) -> None:
    from worker.refresh.write import PostWriter, WriteRequest
    from worker.settings import Settings

    rel = "_posts/2022-04-13-kremlin-admits-significant-losses.md"
    os.remove(site / rel)
    if kind == "fifo":
        os.mkfifo(site / rel)
    else:
        (site / rel).symlink_to("/dev/zero")
    writer = PostWriter(site, Settings(), "2026-11-24T00:00:00Z")
    outcome = writer.write(WriteRequest(rel, "QkqV7TrhN-c", {"statistics.viewCount": "999"}, 0))
    assert outcome.status == "bad" and not outcome.written, outcome
    assert ("named pipe" if kind == "fifo" else "outside the site") in outcome.reason
