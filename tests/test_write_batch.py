"""Writing a batch of posts: each post's outcome is its own, locks are taken without deadlock,
and a file that cannot be written leaves its old bytes and no temp file."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.test_run import mapping
from worker.refresh.write import PostWriter, WriteRequest
from worker.settings import Settings
from worker.site.files import TEMP_PREFIX, _stripe_of, free_file_locks, write_many
from worker.site.posts import video_posts

pytestmark = pytest.mark.timeout(60)
KREMLIN = "_posts/2022-04-13-kremlin-admits-significant-losses.md"
STAMP = "2026-12-02T00:00:00Z"


def temp_files(folder: Path) -> list[Path]:
    return list(folder.rglob(f"{TEMP_PREFIX}*.tmp"))


def test_write_many_reports_each_failure_and_still_writes_the_others(tmp_path: Path) -> None:
    first, last = tmp_path / "first.md", tmp_path / "last.md"
    first.write_bytes(b"old first")
    first.chmod(0o600)
    folder_in_the_way = tmp_path / "folder.md"
    (folder_in_the_way / "inside").mkdir(parents=True)
    failures = write_many([(first, b"new first"), (tmp_path / "no-such-dir" / "x.md", b"x"),
                           (folder_in_the_way, b"never"), (last, b"new last")])
    assert failures[0] is None and failures[3] is None
    assert isinstance(failures[1], FileNotFoundError) and isinstance(failures[2], OSError)
    assert first.read_bytes() == b"new first" and last.read_bytes() == b"new last"
    assert first.stat().st_mode & 0o777 == 0o600 and last.stat().st_mode & 0o777 == 0o644
    assert folder_in_the_way.is_dir() and temp_files(tmp_path) == []


def test_a_file_whose_fsync_fails_is_not_renamed_and_its_temp_file_is_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [tmp_path / f"{n}.md" for n in range(8)]
    for path in paths:
        path.write_bytes(b"old")
    real_fsync, calls = os.fsync, []

    def fsync_failing_once(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(errno.EIO, "I/O error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_failing_once)
    failures = write_many([(path, b"new") for path in paths])
    failed = [path for path, failure in zip(paths, failures, strict=True) if failure is not None]
    assert len(failed) == 1 and failed[0].read_bytes() == b"old"
    assert all(path.read_bytes() == b"new" for path in paths if path not in failed)
    assert temp_files(tmp_path) == []


def test_a_batch_reports_each_post_on_its_own_and_leaves_a_bad_one_byte_identical(site: Path) -> None:
    posts = sorted(p.relative_to(site).as_posix() for p in (site / "_posts").glob("*.md"))
    videos = list(video_posts(site, posts))[:3]
    broken = site / videos[1].path
    broken.write_bytes(b"---\ntitle: [unclosed\nvid_id: " + videos[1].vid_id.encode() + b"\n---\n")
    before = broken.read_bytes()
    os.remove(site / videos[2].path)
    requests = [WriteRequest(post.path, post.vid_id, {"statistics.viewCount": "4242"}, 0) for post in videos]
    outcomes = PostWriter(site, Settings(), STAMP).write_batch(requests)
    assert [o.path for o in outcomes] == [post.path for post in videos]
    assert [o.status for o in outcomes] == ["refreshed", "bad", "gone"]
    assert mapping(site / videos[0].path)["viewcount"] == "4242"
    assert broken.read_bytes() == before
    assert temp_files(site) == []


def test_a_person_edit_made_after_the_post_was_read_is_kept_by_a_batch(site: Path) -> None:
    known = next(video_posts(site, [KREMLIN]), None)
    assert known is not None
    path = site / KREMLIN
    path.write_bytes(path.read_bytes().replace(b'DW News"', b'DW News (edited)"'))
    request = WriteRequest(KREMLIN, known.vid_id, {"statistics.viewCount": "999"}, 0, known=known)
    [outcome] = PostWriter(site, Settings(), STAMP).write_batch([request])
    assert outcome.status == "refreshed"
    values = mapping(path)
    assert values["channel"] == "DW News (edited)" and values["viewcount"] == "999"


def test_a_post_named_twice_in_a_batch_gets_both_writes_and_history_keeps_the_first(site: Path) -> None:
    known = next(video_posts(site, [KREMLIN]), None)
    assert known is not None
    requests = [WriteRequest(KREMLIN, known.vid_id, {"statistics.viewCount": views}, 0)
                for views in ("1000", "2000")]
    outcomes = PostWriter(site, Settings(), STAMP).write_batch(requests)
    assert [o.status for o in outcomes] == ["refreshed", "refreshed"]
    values = mapping(site / KREMLIN)
    assert values["viewcount"] == "2000"
    assert "1000" in str(values["history"])


def keys_on_distinct_stripes(count: int) -> list[str]:
    keys: dict[int, str] = {}
    for n in range(1_000):
        keys.setdefault(_stripe_of(f"_posts/{n}.md"), f"_posts/{n}.md")
    return list(keys.values())[:count]


def test_free_locks_skip_a_stripe_another_process_holds_and_wait_only_when_none_is_free(
        tmp_path: Path) -> None:
    held, free = keys_on_distinct_stripes(2)
    lock_dir = tmp_path / "locks"
    script = ("import sys, time; from pathlib import Path; from worker.site.files import free_file_locks\n"
              "with free_file_locks(Path(sys.argv[1]), [sys.argv[2]]):\n"
              "    print('held', flush=True); time.sleep(1.0)")
    with subprocess.Popen([sys.executable, "-c", script, str(lock_dir), held], stdout=subprocess.PIPE,
                          text=True, cwd=Path(__file__).resolve().parents[1]) as child:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        with free_file_locks(lock_dir, [held, free]) as taken:
            assert taken == {free}
        started = time.monotonic()
        with free_file_locks(lock_dir, [held]) as taken:
            assert taken == {held}
            assert time.monotonic() - started > 0.3  # it waited for the other process


def test_threads_taking_overlapping_stripes_in_any_order_never_deadlock(tmp_path: Path) -> None:
    keys = keys_on_distinct_stripes(12)
    lock_dir = tmp_path / "locks"
    written: list[str] = []

    def writer(order: list[str]) -> None:
        remaining = list(order)
        while remaining:
            with free_file_locks(lock_dir, remaining) as taken:
                written.extend(taken)
                remaining = [key for key in remaining if key not in taken]
                time.sleep(0.001)

    threads = [threading.Thread(target=writer, args=(keys[i:] + keys[:i],)) for i in range(0, 12, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(written) == sorted(keys * len(threads))
