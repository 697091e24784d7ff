"""`postrefresh run --commit [--push]` against a real git repository and a bare remote."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult
from tests.test_run import mapping, video_posts
from worker.simulator.server import YouTubeSimulator
from worker.site.git import commit_message

pytestmark = pytest.mark.timeout(60)
Cli = Callable[..., CliResult]
GONE = "QkqV7TrhN-c"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture
def repo(site: Path) -> Path:
    """The seed site as a git repository with one commit, plus an unrelated tracked file."""
    git(site, "init", "-q", "-b", "main")
    git(site, "config", "user.name", "Test")
    git(site, "config", "user.email", "test@example.com")
    (site / "about.md").write_text("# About\n")
    git(site, "add", "-A")
    git(site, "commit", "-q", "-m", "site")
    return site


def committed_files(repo: Path, rev: str = "HEAD") -> set[str]:
    out = git(repo, "-c", "core.quotePath=false", "show", "--name-only", "--format=", rev)
    return set(out.split("\n")) - {""}


def test_commit_holds_exactly_the_files_the_run_wrote(cli: Cli, repo: Path) -> None:
    (repo / "notes.txt").write_text("untracked, not ours\n")
    (repo / "about.md").write_text("# About\nedited, not staged\n")
    result = cli("run", "--site", str(repo), "--commit")
    assert result.code == 0, result.err
    files = committed_files(repo)
    posts = {p.relative_to(repo).as_posix() for p in video_posts(repo)}
    thumbnails = {f for f in files if f.startswith("assets/thumbnails/")}
    assert posts <= files
    assert files == posts | thumbnails | {"_data/postrefresh/summary.json"}
    assert thumbnails, "the run stored thumbnails"
    message = git(repo, "log", "-1", "--format=%s").strip()
    assert message == (f"postrefresh: {len(posts)} posts refreshed, 0 unavailable, "
                       f"{len(thumbnails)} thumbnails, summary")
    assert f"committed {git(repo, 'rev-parse', 'HEAD')[:12]}" in result.err
    status = git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert sorted(status) == [" M about.md", "?? notes.txt"]


def test_the_message_counts_posts_marked_unavailable(cli: Cli, repo: Path, sim: YouTubeSimulator) -> None:
    assert cli("run", "--site", str(repo), "--commit").code == 0
    (repo / "_postrefresh.toml").write_text("absent_runs = 1\n")
    sim.config = dataclasses.replace(sim.config, deleted=frozenset({GONE}), epoch=1)
    result = cli("run", "--site", str(repo), "--commit")
    assert result.code == 0, result.err
    gone = [p for p in video_posts(repo) if mapping(p)["vid_id"] == GONE]
    message = git(repo, "log", "-1", "--format=%s").strip()
    assert message.startswith(f"postrefresh: {len(video_posts(repo)) - len(gone)} posts refreshed, "
                              f"{len(gone)} unavailable")
    assert "_postrefresh.toml" not in committed_files(repo)


def test_push_reaches_the_bare_remote(cli: Cli, repo: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "-u", "origin", "main")
    result = cli("run", "--site", str(repo), "--commit", "--push")
    assert result.code == 0, result.err
    assert "and pushed" in result.err
    assert git(remote, "rev-parse", "main") == git(repo, "rev-parse", "HEAD")
    assert git(remote, "log", "-1", "--format=%s", "main").startswith("postrefresh: ")


def test_unrelated_staged_changes_refuse_with_one_line_and_nothing_is_written(cli: Cli, repo: Path) -> None:
    (repo / "about.md").write_text("# About\nstaged by a person\n")
    git(repo, "add", "about.md")
    head = git(repo, "rev-parse", "HEAD")
    result = cli("run", "--site", str(repo), "--commit")
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        "postrefresh: refusing to commit: about.md is staged but was not written by postrefresh; "
        "commit or unstage it (git restore --staged) first"]
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain").splitlines() == ["M  about.md"]


def test_nothing_changed_makes_no_commit(cli: Cli, repo: Path) -> None:
    assert cli("run", "--site", str(repo), "--commit").code == 0
    head = git(repo, "rev-parse", "HEAD")
    again = cli("run", "--site", str(repo), "--commit")
    assert again.code == 0 and "nothing to commit" in again.err
    assert git(repo, "rev-parse", "HEAD") == head


def test_a_site_outside_git_is_refused_with_one_line(cli: Cli, site: Path) -> None:
    result = cli("run", "--site", str(site), "--commit")
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1 and "is not in a git repository" in result.err
    assert not (site / "_data/postrefresh/summary.json").exists()


def test_push_without_commit_is_a_usage_error(cli: Cli, repo: Path) -> None:
    assert cli("run", "--site", str(repo), "--push").code == 2


def test_the_message_sums_the_change() -> None:
    kinds = ["refreshed"] * 312 + ["unavailable"] * 3
    assert commit_message(kinds) == "postrefresh: 312 posts refreshed, 3 unavailable"
    assert commit_message(["refreshed", "thumbnail", "csv", "summary"]) == (
        "postrefresh: 1 post refreshed, 0 unavailable, 1 thumbnail, 1 history file, summary")
