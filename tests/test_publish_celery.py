"""The Celery path's site data and publishing: scan writes the summary, workers record what they
wrote in Redis, and `postrefresh.publish` commits exactly those files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import redis

from tests.celery_fixtures import CELERY, ROOT, celery_env, celery_worker, redis_client, redis_url, wait_for
from tests.conftest import FAST_CONFIG
from tests.test_celery import drained
from tests.test_publish import committed_files, git, repo
from tests.test_run import video_posts
from worker.settings import SiteSettings
from worker.shared.keys import PUBLISHING_KEY, WRITTEN_KEY
from worker.simulator.server import YouTubeSimulator
from worker.site.paths import summary_file

SUMMARY_PATH = summary_file(SiteSettings().data_dir)

__all__ = ["redis_client", "redis_url", "repo"]  # fixtures used below
pytestmark = pytest.mark.timeout(120)


def call(env: dict[str, str], task: str) -> None:
    subprocess.run([CELERY, "-A", "tasks", "call", task], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=60)


def test_scan_writes_the_summary_and_publish_commits_only_what_the_workers_wrote(
        redis_url: str, redis_client: redis.Redis, sim: YouTubeSimulator, repo: Path, tmp_path: Path) -> None:
    config = tmp_path / "publish.toml"
    config.write_text(FAST_CONFIG + "publish_commit = true\n")
    env = celery_env(redis_url, sim, repo, config)
    (repo / "notes.txt").write_text("untracked, not ours\n")
    head = git(repo, "rev-parse", "HEAD")
    thumbs = repo / "assets" / "thumbnails"
    posts = {p.relative_to(repo).as_posix() for p in video_posts(repo)}
    with celery_worker(env, tmp_path / "worker.log"):
        call(env, "postrefresh.scan")
        everything = len(posts) + 11 + 1  # posts, thumbnails, summary
        wait_for(lambda: drained(redis_client) and redis_client.hlen(WRITTEN_KEY) >= everything, 60,
                 "the scan's posts were not written")
        assert json.loads((repo / SUMMARY_PATH).read_text())["counts"]["videos"] == len(posts)
        call(env, "postrefresh.publish")
        wait_for(lambda: git(repo, "rev-parse", "HEAD") != head, 30, "publish made no commit")
    files = committed_files(repo)
    thumbnails = {f for f in files if f.startswith("assets/thumbnails/")}
    assert len(thumbnails) == len(list(thumbs.glob("*.jpg"))) == 11
    assert files == posts | thumbnails | {SUMMARY_PATH}
    assert git(repo, "log", "-1", "--format=%s").strip() == (
        f"postrefresh: {len(posts)} posts refreshed, 0 unavailable, 11 thumbnails, summary")
    assert git(repo, "status", "--porcelain", "--untracked-files=all").splitlines() == ["?? notes.txt"]
    assert not redis_client.exists(WRITTEN_KEY) and not redis_client.exists(PUBLISHING_KEY)


def test_publish_refuses_unrelated_staged_changes_and_keeps_the_record(
        redis_url: str, redis_client: redis.Redis, sim: YouTubeSimulator, repo: Path, tmp_path: Path) -> None:
    config = tmp_path / "publish.toml"
    config.write_text(FAST_CONFIG + "publish_commit = true\nthumbnails = false\nsite_summary = false\n")
    env = celery_env(redis_url, sim, repo, config)
    (repo / "about.md").write_text("# About\nstaged by a person\n")
    git(repo, "add", "about.md")
    head = git(repo, "rev-parse", "HEAD")
    with celery_worker(env, tmp_path / "worker.log", queues="fetch,write,scan"):
        call(env, "postrefresh.scan")
        wait_for(lambda: drained(redis_client) and redis_client.hlen(WRITTEN_KEY) > 0, 60, "nothing written")
        call(env, "postrefresh.publish")
        wait_for(lambda: "refusing to commit: about.md" in (tmp_path / "worker.log").read_text(), 30,
                 "no refusal logged")
    assert git(repo, "rev-parse", "HEAD") == head
    assert redis_client.hlen(PUBLISHING_KEY) > 0  # kept for the next publish
