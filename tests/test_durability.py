"""Durable, not only atomic: a writer killed at any step of a batch leaves every post old or new,
the next run sweeps its temp files and finishes; the system calls come in the order that makes
a rename survive a power cut (strace); kill -9 in the middle of real runs loses nothing."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.gen_posts import generate_site
from tests.conftest import CliResult
from tests.simulator_fixtures import API_KEY
from tests.test_run import assert_matches_truth
from worker.simulator.server import YouTubeSimulator
from worker.site.files import TEMP_PREFIX
from worker.site.posts import parse_post

pytestmark = pytest.mark.timeout(120)
Cli = Callable[..., CliResult]
ROOT = Path(__file__).resolve().parents[1]
BATCH = 50

# Runs in a child process: refresh every post of SITE in batches of 50 with the simulator's
# truth, and SIGKILL itself the NTH time the batch write reaches STEP (files.crash_hook).
CHILD = """
import os, signal, sys
from pathlib import Path
from worker.refresh.write import PostWriter, WriteRequest
from worker.settings import Settings
from worker.simulator.truth import expected_fields
from worker.site import files
from worker.site.posts import parse_post

site, step, nth = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
reached = 0

def die_at(name):
    global reached
    if name == step:
        reached += 1
        if reached == nth:
            os.kill(os.getpid(), signal.SIGKILL)

files.crash_hook = die_at
requests = []
for path in sorted((site / "_posts").iterdir()):
    rel = path.relative_to(site).as_posix()
    vid_id = parse_post(rel, path.read_bytes()).vid_id
    requests.append(WriteRequest(rel, vid_id, expected_fields(vid_id, 0), 0))
writer = PostWriter(site, Settings(), "2026-12-02T00:00:00Z")
for start in range(0, len(requests), 50):
    writer.write_batch(requests[start:start + 50])
"""


def write_in_child(site: Path, step: str = "", nth: int = 0) -> int:
    child = subprocess.run([sys.executable, "-c", CHILD, str(site), step, str(nth)], cwd=ROOT,
                           capture_output=True, text=True, timeout=90)
    assert child.returncode in (0, -signal.SIGKILL), child.stderr
    return child.returncode


def posts_of(site: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((site / "_posts").iterdir())
            if not p.name.startswith(TEMP_PREFIX)}


def temp_files(site: Path) -> list[Path]:
    return list(site.rglob(f"{TEMP_PREFIX}*.tmp"))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes], dict[str, bytes]]:
    """A site of 300 posts, its bytes before, and its bytes after a write that is not killed."""
    pristine = tmp_path_factory.mktemp("pristine") / "site"
    generate_site(pristine, 300, seed=11)
    reference = tmp_path_factory.mktemp("reference") / "site"
    shutil.copytree(pristine, reference)
    assert write_in_child(reference) == 0
    return pristine, posts_of(pristine), posts_of(reference)


# (step, nth time it is reached, posts that must be new after the kill)
CRASHES = [
    ("written", 3, 2 * BATCH),  # third batch: temp files written, not yet synced
    ("synced", 3, 2 * BATCH),  # temp files synced, none renamed
    ("renamed-one", 2 * BATCH + 17, 2 * BATCH + 17),  # between two renames of the third batch
    ("renamed-one", 3 * BATCH, 3 * BATCH),  # all renamed, folder not yet synced
    ("folders-synced", 3, 3 * BATCH),  # folder synced, outcomes not yet returned
]


@pytest.mark.parametrize(("step", "nth", "new"), CRASHES, ids=[f"{s}-{n}" for s, n, _ in CRASHES])
def test_a_writer_killed_at_any_step_leaves_each_post_old_or_new_and_the_next_run_finishes(
        written: tuple[Path, dict[str, bytes], dict[str, bytes]], tmp_path: Path, cli: Cli,
        step: str, nth: int, new: int) -> None:
    pristine, old_bytes, new_bytes = written
    site = tmp_path / "site"
    shutil.copytree(pristine, site)
    assert write_in_child(site, step, nth) == -signal.SIGKILL
    after = posts_of(site)
    assert after.keys() == old_bytes.keys()
    assert all(data in (old_bytes[name], new_bytes[name]) for name, data in after.items())
    assert sum(data == new_bytes[name] != old_bytes[name] for name, data in after.items()) == new
    for name, data in after.items():
        assert parse_post(f"_posts/{name}", data) is not None, name
    if step in ("written", "synced"):
        assert len(temp_files(site)) == BATCH  # the dead writer's, until the next run sweeps them
    result = cli("run", "--site", str(site), "--no-thumbnails", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["refreshed"] == 300 - new
    assert temp_files(site) == []
    for post in (site / "_posts").iterdir():
        assert_matches_truth(post)


TRACED = ("fsync", "fdatasync", "rename", "renameat", "renameat2", "openat", "write")
SYSCALL = re.compile(r'^(\d+) +(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*)$')


def syscalls(trace: Path) -> list[tuple[int, str, str]]:
    """(thread, call, arguments) of each finished call, in the order they finished."""
    started: dict[int, tuple[str, str]] = {}
    finished = []
    for line in trace.read_text().splitlines():
        match = SYSCALL.match(line)
        if not match:
            continue
        tid, resumed, call, rest = int(match[1]), match[2], match[3], match[4]
        if resumed:
            call, head = started.pop(tid)
            rest = head + rest
        if rest.endswith("<unfinished ...>"):
            started[tid] = (call, rest.removesuffix("<unfinished ...>"))
            continue
        finished.append((tid, call, rest))
    return finished


def test_each_rename_follows_its_fsync_and_each_folder_is_synced_before_its_writer_moves_on(
        tmp_path: Path, sim: YouTubeSimulator) -> None:
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace is missing: `bash scripts/test-tools` installs Debian's strace package")
    site = tmp_path / "site"
    generate_site(site, 200, seed=12)
    posts = (site / "_posts").resolve()
    trace = tmp_path / "trace.txt"
    env = {**os.environ, "YOUTUBE_API_KEY": API_KEY, "YOUTUBE_API_URL": f"{sim.url}/youtube/v3"}
    run = subprocess.run(
        [strace, "-f", "-y", "-o", str(trace), "-e", "trace=" + ",".join(TRACED),
         sys.executable, "-m", "worker", "run", "--site", str(site), "--no-thumbnails", "--json"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=100)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["refreshed"] == 200
    calls = syscalls(trace)
    synced_at: dict[str, int] = {}  # temp file -> when its fsync finished
    renames: list[tuple[int, str]] = []  # (when, target) of each post's rename
    waiting: dict[int, set[str]] = {}  # thread -> folders it renamed in and has not synced
    summary_at = None
    for at, (tid, call, args) in enumerate(calls):
        fd_path = re.match(r"\d+<(.*?)>", args)
        if call in ("fsync", "fdatasync") and fd_path:
            synced_at[fd_path[1]] = at
            waiting.get(tid, set()).discard(fd_path[1])
        elif call.startswith("rename") and TEMP_PREFIX in args and str(posts) in args:
            source, target = re.findall(r'"([^"]+)"', args)[:2]
            assert synced_at.get(source, at) < at, f"{source} renamed before its fsync finished"
            renames.append((at, target))
            waiting.setdefault(tid, set()).add(str(Path(target).parent))
        elif call == "openat" and waiting.get(tid) and re.findall(r'"([^"]+)"', args)[0] not in waiting[tid]:
            pytest.fail(f"thread {tid} opened a file before syncing {waiting[tid]}: {args}")
        elif call == "write" and args.startswith("1<"):
            summary_at = at  # the last write to stdout: the summary
    assert len({target for _, target in renames}) == 200
    assert not any(waiting.values()), waiting
    assert summary_at is not None and summary_at > synced_at[str(posts)] > renames[-1][0]


def test_kill_9_at_random_moments_of_real_runs_loses_nothing_and_a_last_run_finishes(
        tmp_path: Path, sim: YouTubeSimulator) -> None:
    # 3,000 posts, not 10,000: five interrupted runs and a full one stay well under a minute.
    site = tmp_path / "site"
    generate_site(site, 3_000, seed=13)
    pristine = posts_of(site)
    env = {**os.environ, "YOUTUBE_API_KEY": API_KEY, "YOUTUBE_API_URL": f"{sim.url}/youtube/v3"}
    command = [sys.executable, "-m", "worker", "run", "--site", str(site), "--no-thumbnails", "--json"]
    rng = random.Random(13)
    changed_by_kills = []
    for _ in range(5):
        calls = sim.counters.api_ok + rng.randint(1, 40)
        with subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) as proc:
            deadline = time.monotonic() + 30
            while sim.counters.api_ok < calls and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.2))
            proc.send_signal(signal.SIGKILL)
        assert proc.returncode == -signal.SIGKILL
        now = posts_of(site)
        for name, data in now.items():
            if data != pristine[name]:
                assert_matches_truth(site / "_posts" / name)  # parseable, and the new values
        changed_by_kills.append(sum(now[name] != pristine[name] for name in now))
    assert 0 < changed_by_kills[-1] < 3_000, changed_by_kills
    final = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert final.returncode == 0, final.stderr
    assert json.loads(final.stdout)["refreshed"] == 3_000 - changed_by_kills[-1]
    assert temp_files(site) == []
    for post in (site / "_posts").iterdir():
        assert_matches_truth(post)
