"""What a newcomer meets first, driven as they meet it: the `postrefresh` command in a subprocess."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import pty
import re
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
import redis

from bench.gen_posts import generate_site
from tests.celery_fixtures import ROOT, free_port, redis_client, redis_url, wait_for
from tests.conftest import SEEDS, snapshot
from tests.test_bad_input import sim_env
from tests.test_publish import git, repo
from tests.test_run import assert_matches_truth, video_posts
from worker.simulator.server import YouTubeSimulator

__all__ = ["redis_client", "redis_url", "repo"]  # fixtures used below
pytestmark = pytest.mark.timeout(60)
KREMLIN = "_posts/2022-04-13-kremlin-admits-significant-losses.md"


def postrefresh(sim: YouTubeSimulator, *args: str, cwd: Path | None = None,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`postrefresh ARGS` as a user types it, pointed at the simulator."""
    return subprocess.run([sys.executable, "-m", "worker", *args], cwd=cwd, env=env or sim_env(sim),
                          capture_output=True, text=True, timeout=50)


def assert_refused(result: subprocess.CompletedProcess[str], line: str) -> None:
    """Exit 2 with this one line and nothing else."""
    assert (result.returncode, result.stderr.splitlines()) == (2, [f"postrefresh: {line}"])


def changed_files(site: Path, before: dict[str, bytes]) -> set[str]:
    return {path for path, data in snapshot(site).items() if before.get(path) != data}


@pytest.mark.parametrize("command", [("run",), ("enqueue", "--all")])
def test_run_or_enqueue_on_a_folder_that_is_not_a_site_exits_2_with_one_line_and_writes_nothing(
        sim: YouTubeSimulator, tmp_path: Path, command: tuple[str, ...]) -> None:
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "notes.md").write_text("---\nvid_id: \"QkqV7TrhN-c\"\n---\n")
    result = postrefresh(sim, *command, "--site", str(folder))
    assert_refused(result, f"{folder} is not a Jekyll site: it has no _posts/ folder; pass the "
                           "site's own folder with --site (or set generator or posts_globs)")
    assert sorted(p.name for p in folder.iterdir()) == ["notes.md"]  # no .postrefresh/, no _data/
    assert sim.counters.api_requests == 0


def test_post_paths_are_the_sites_from_any_folder(sim: YouTubeSimulator, site: Path, tmp_path: Path) -> None:
    before = snapshot(site)
    result = postrefresh(sim, "run", "--site", str(site), "--no-thumbnails", KREMLIN, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert changed_files(site, before) == {KREMLIN, "_data/postrefresh/summary.json"}
    assert_matches_truth(site / KREMLIN)


def test_a_path_from_the_current_folder_inside_the_site_still_works(sim: YouTubeSimulator,
                                                                    site: Path) -> None:
    before = snapshot(site)
    name = Path(KREMLIN).name
    result = postrefresh(sim, "run", "--site", "..", "--no-thumbnails", name, cwd=site / "_posts")
    assert result.returncode == 0, result.stderr
    assert changed_files(site, before) == {KREMLIN, "_data/postrefresh/summary.json"}


def test_a_post_path_that_does_not_exist_says_so(sim: YouTubeSimulator, site: Path, tmp_path: Path) -> None:
    before = snapshot(site)
    result = postrefresh(sim, "run", "--site", str(site), "_posts/no-such-post.md", cwd=tmp_path)
    assert_refused(result, f"no such post: _posts/no-such-post.md (neither in the site {site} "
                           "nor in the current folder)")
    assert snapshot(site) == before


def test_a_path_outside_the_site_is_refused(sim: YouTubeSimulator, site: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.md"
    elsewhere.write_text("---\nvid_id: \"QkqV7TrhN-c\"\n---\n")
    result = postrefresh(sim, "run", "--site", str(site), str(elsewhere))
    assert_refused(result, f"{elsewhere} is not inside the site {site}")


def test_enqueue_takes_the_sites_paths_too(sim: YouTubeSimulator, site: Path, tmp_path: Path,
                                           redis_url: str, redis_client: redis.Redis) -> None:
    env = {**sim_env(sim), "REDIS_URL": redis_url}
    result = postrefresh(sim, "enqueue", "--site", str(site), "--dry-run", KREMLIN, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert f"would queue {KREMLIN} (QkqV7TrhN-c)" in result.stdout and "would queue: 1 " in result.stdout
    missing = postrefresh(sim, "enqueue", "--site", str(site), "_posts/nope.md", cwd=tmp_path, env=env)
    assert missing.returncode == 2 and "no such post: _posts/nope.md" in missing.stderr
    assert redis_client.dbsize() == 0
    assert os.listdir(tmp_path) == ["site"]


def git_env(sim: YouTubeSimulator, home: Path) -> dict[str, str]:
    """The simulator's env with git's global and system config out of the way."""
    env = {k: v for k, v in sim_env(sim).items() if not k.startswith("GIT_") and k != "EMAIL"}
    return {**env, "HOME": str(home), "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def test_commit_without_a_git_identity_refuses_before_writing_anything(
        sim: YouTubeSimulator, site: Path, tmp_path: Path) -> None:
    env = git_env(sim, tmp_path)
    git(site, "init", "-q", "-b", "main")
    git(site, "add", "-A")
    git(site, "-c", "user.name=Seed", "-c", "user.email=seed@example.com", "commit", "-q", "-m", "site")
    git(site, "config", "user.useConfigOnly", "true")  # no guessing an address from the host name
    before = snapshot(site)
    result = postrefresh(sim, "run", "--site", str(site), "--commit", env=env)
    assert_refused(result, f"git does not know who commits in {site}: set user.name and user.email "
                           "there (git config user.email you@example.com), or leave out --commit / "
                           "publish_commit")
    assert snapshot(site) == before and sim.counters.api_requests == 0


def test_a_commit_a_hook_refuses_leaves_nothing_staged_exits_75_and_the_next_commit_runs(
        sim: YouTubeSimulator, repo: Path) -> None:
    hook = repo / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\necho 'pre-commit: no commits today' >&2\nexit 1\n")
    hook.chmod(0o755)
    head = git(repo, "rev-parse", "HEAD")
    result = postrefresh(sim, "run", "--site", str(repo), "--no-thumbnails", "--commit")
    assert result.returncode == 75, result.stderr
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("postrefresh:")]
    assert line.startswith("postrefresh: git commit failed: pre-commit: no commits today; nothing is "
                           "left staged, and the 13 files written stay uncommitted")
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "diff", "--cached", "--name-only") == ""
    assert_matches_truth(repo / KREMLIN)
    hook.unlink()
    again = postrefresh(sim, "run", "--site", str(repo), "--no-thumbnails", "--commit")
    assert again.returncode == 0, again.stderr  # not refused for files of its own left staged


def big_site(tmp_path: Path, count: int) -> Path:
    """`count` generated video posts and one bad post."""
    site = tmp_path / "big"
    generate_site(site, count, seed=3)
    (site / "_posts/2020-01-01-broken.md").write_bytes(b"no front matter\n")
    return site


def test_the_default_level_logs_one_line_per_batch_and_per_bad_post_not_per_thumbnail(
        sim: YouTubeSimulator, tmp_path: Path) -> None:
    site = big_site(tmp_path, 120)
    result = postrefresh(sim, "run", "--site", str(site), "--json")
    assert result.returncode == 1, result.stderr
    calls = json.loads(result.stdout)["api_calls"]
    lines = result.stderr.splitlines()
    batches = [line for line in lines if re.fullmatch(r"INFO worker\.refresh\.pipeline: \d+ posts: .*", line)]
    assert len(batches) == calls == 3
    assert [line for line in lines if line not in batches] == [
        "WARNING postrefresh: bad post _posts/2020-01-01-broken.md: no front matter: the file does not "
        "start with a '---' line",
        "INFO worker.outputs.site_data: wrote _data/postrefresh/summary.json: 120 videos, 0 unavailable"]


def test_on_a_terminal_the_bar_shows_the_total_and_an_eta_and_log_lines_stay_off_it(
        sim: YouTubeSimulator, tmp_path: Path) -> None:
    site = big_site(tmp_path, 400)
    sim.config = dataclasses.replace(sim.config, latency=0.1)  # a run long enough to draw the bar
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal's size
    with subprocess.Popen([sys.executable, "-m", "worker", "run", "--site", str(site), "--no-thumbnails"],
                          env=sim_env(sim), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=follower) as proc:
        os.close(follower)
        screen = read_all(leader)
        assert proc.wait(50) == 1
    assert re.search(r"\d+/401 \[\d\d:\d\d<\d\d:\d\d", screen), screen  # taken/total [elapsed<ETA
    starts = [m.start() for m in re.finditer(r"(INFO|WARNING) ", screen)]
    assert len(starts) >= 9  # 8 batches, the bad post (and the summary file)
    assert all(start == 0 or screen[start - 1] in "\r\n" for start in starts), screen


def read_all(fd: int) -> str:
    chunks = []
    with contextlib.suppress(OSError):  # EIO once the child closed its side
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def test_a_dry_runs_summary_says_it_was_one(sim: YouTubeSimulator, site: Path) -> None:
    result = postrefresh(sim, "run", "--site", str(site), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "dry run: nothing was written; the counts say what a run would have done" in result.stderr


def test_a_stopped_runs_summary_counts_every_post_it_never_reached(sim: YouTubeSimulator,
                                                                  tmp_path: Path) -> None:
    site = big_site(tmp_path, 300)
    (site / "_postrefresh.toml").write_text("concurrency = 1\n")
    result = postrefresh(sim, "run", "--site", str(site), "--no-thumbnails", "--max-units", "1", "--json")
    assert result.returncode == 75, result.stderr
    summary = json.loads(result.stdout)
    assert summary["refreshed"] == 50
    assert summary["refreshed"] + summary["not_reached"] + len(summary["bad"]) == 301


def test_help_says_what_the_tool_and_each_command_are_for(sim: YouTubeSimulator) -> None:
    result = postrefresh(sim, "--help")
    assert result.returncode == 0
    assert "Keeps a Jekyll site's YouTube video posts up to date" in result.stdout
    for command in ("run", "history", "enqueue", "status", "metrics", "demo", "report"):
        assert re.search(rf"^    {command} +\w+", result.stdout, re.M), command  # its purpose beside it
    assert "postrefresh demo  " in result.stdout and "COMMAND --help" in result.stdout
    assert "tasks/" not in result.stdout  # no word for developers only
    run = postrefresh(sim, "run", "--help").stdout
    assert "Refresh the site's video posts now" in run and "Post paths are the site's" in run


def test_the_readmes_simulator_recipe_refreshes_a_site(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- simulator-example -->\n```\n", 1)[1].split("```", 1)[0]
    port = free_port()
    lines = [line.split("#", 1)[0].strip() for line in block.replace("8765", str(port)).splitlines()]
    start, *exports, copy, run = lines
    assert start.startswith("python -m worker.simulator ") and start.endswith("&")
    assert copy == "cp -r seeds /tmp/sample" and run.startswith("postrefresh run ")
    site = tmp_path / "sample"
    shutil.copytree(SEEDS, site)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTREFRESH", "YOUTUBE"))}
    env.update(dict(line.removeprefix("export ").split("=", 1) for line in exports))
    with subprocess.Popen([sys.executable, *shlex.split(start.rstrip("&"))[1:]], env=env,
                          stdout=subprocess.DEVNULL) as simulator:
        try:
            wait_for(lambda: _listening(port), 10, "the simulator did not start")
            args = shlex.split(run.replace("/tmp/sample", str(site)))[1:]
            result = subprocess.run([sys.executable, "-m", "worker", *args], env=env, capture_output=True,
                                    text=True, timeout=50)
        finally:
            simulator.terminate()
    assert result.returncode == 0, result.stderr
    for post in video_posts(site):
        assert_matches_truth(post)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
