"""Durable file writes, one or a batch: temp file in the same folder, fsync, rename; plus per-file locks."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

LOCK_STRIPES = 64
TEMP_PREFIX = ".postrefresh-"


def write_atomic(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Replace `path` with `data` so that readers see the old or the new bytes, never a mix.

    The one-file case of write_many; its error is raised rather than returned. `data` may be
    chunks, written as they come, so a large file (the report's page) is never one string.
    """
    failure = write_many([(path, data)])[0]
    if failure is not None:
        raise failure


def write_many(files: Sequence[tuple[Path, bytes | Iterable[bytes]]]) -> list[OSError | None]:
    """Replace each path with its bytes durably, as a batch; returns each file's error or None.

    Every temp file lives beside its target (same file system, so the rename is atomic), keeps
    the old file's mode and owner, and is written first; then all are fsynced at once (ext4
    commits concurrent fsyncs in one journal transaction), renamed one by one, and each folder
    is fsynced once, before this returns. A file that fails leaves its old bytes, its temp file
    removed, and the others go on.
    """
    pending: list[_Temp] = []
    failures: list[OSError | None] = [None] * len(files)
    done = 0
    try:
        for index, (path, data) in enumerate(files):
            try:
                pending.append(_write_temp(index, path, data))
            except OSError as exc:
                failures[index] = exc
        _crash_point("written")
        synced = _sync_all(pending)
        _crash_point("synced")
        for temp, error in zip(pending, synced, strict=True):
            if error is None:
                error = _rename(temp)
            else:
                _discard(temp)  # never rename what may not be on disk
            failures[temp.index] = error
            done += 1
            _crash_point("renamed-one")
    finally:
        for temp in pending[done:]:  # only when interrupted: nothing half-done is left behind
            _discard(temp)
    sync_directories(temp.target.parent for temp in pending if failures[temp.index] is None)
    _crash_point("folders-synced")
    return failures


# Measured on ext4 (virtio disk, shared 2-core host), 50 fsyncs of fresh 1.6 KB files, median of
# 10: one after another 27-42 ms, 2 threads 20-29, 4: 14-20, 8: 12-16, 16: 10-13. In a whole
# 10,000-post run, where several batches write at once and every thread wants the GIL back,
# 1 to 8 threads differed by less than the host's noise; 4 gets most of the gain in few threads.
FSYNC_THREADS = 4

crash_hook: Callable[[str], None] | None = None
"""Tests only: called with the step a batch write reached, so a child process can die there.

The steps are "written" (temp files written, not synced), "synced", "renamed-one" (after
each rename) and "folders-synced". Unset (None) it costs one comparison per step.
"""


def _crash_point(step: str) -> None:
    if crash_hook is not None:
        crash_hook(step)


@dataclass
class _Temp:
    """A temp file written for `target`, open (`fd`) until it is synced."""

    index: int
    target: Path
    name: str
    fd: int | None

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


def _write_temp(index: int, path: Path, data: bytes | Iterable[bytes]) -> _Temp:
    try:
        old: os.stat_result | None = path.stat()
    except FileNotFoundError:
        old = None
    fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=".tmp", dir=path.parent)
    try:
        for chunk in [data] if isinstance(data, bytes) else data:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
        if old is not None:
            os.fchmod(fd, old.st_mode & 0o7777)
            _keep_owner(fd, old)
        else:
            os.fchmod(fd, 0o644)
    except BaseException:
        os.close(fd)
        os.unlink(name)
        raise
    return _Temp(index, path, name, fd)


def _sync_all(pending: list[_Temp]) -> list[OSError | None]:
    # A thread per fsync in flight: the file system commits the ones that wait together.
    try:
        if len(pending) < 2:
            return [_sync_temp(temp) for temp in pending]
        with ThreadPoolExecutor(max_workers=min(FSYNC_THREADS, len(pending))) as pool:
            return list(pool.map(_sync_temp, pending))
    finally:
        for temp in pending:
            temp.close()


def _sync_temp(temp: _Temp) -> OSError | None:
    assert temp.fd is not None  # closed only once synced
    try:
        os.fsync(temp.fd)
    except OSError as exc:
        return exc
    return None


def _rename(temp: _Temp) -> OSError | None:
    try:
        os.replace(temp.name, temp.target)
    except OSError as exc:
        _discard(temp)
        return exc
    return None


def _discard(temp: _Temp) -> None:
    temp.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp.name)


def _keep_owner(fd: int, old: os.stat_result) -> None:
    # Only root may give a file away; for anyone else the temp file is already theirs.
    with contextlib.suppress(PermissionError):
        os.fchown(fd, old.st_uid, old.st_gid)


def sync_directories(directories: Iterable[Path]) -> None:
    """fsync folders, so the renames made in them survive a power cut."""
    for directory in set(directories):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def free_file_locks(lock_dir: Path, keys: Iterable[str]) -> Iterator[set[str]]:
    """Hold the locks of those `keys` (site-relative paths) that are free now, at least one; yields them.

    A lock excludes all threads and processes. Locks are striped over a fixed set of files so the
    lock folder never grows with the site; two posts may share a stripe, which only serialises
    them. A flock belongs to an open file, which the threads of a process share: a thread lock
    per stripe serialises those. Taking only the free stripes lets two batches that share a few
    go on side by side; it waits only while it holds nothing, so no two holders wait in a circle.
    """
    stripes: dict[int, set[str]] = {}
    for key in keys:
        stripes.setdefault(_stripe_of(key), set()).add(key)
    order = sorted(stripes)
    with contextlib.ExitStack() as held:
        taken = [n for n in order if _take(held, lock_dir, n, wait=False)]
        if not taken and order:
            _take(held, lock_dir, order[0], wait=True)
            taken = [order[0], *(n for n in order[1:] if _take(held, lock_dir, n, wait=False))]
        yield {key for number in taken for key in stripes[number]}


def _stripe_of(key: str) -> int:
    digest = hashlib.blake2s(os.fsencode(key), digest_size=2).hexdigest()
    return int(digest, 16) % LOCK_STRIPES


def _take(held: contextlib.ExitStack, lock_dir: Path, number: int, *, wait: bool) -> bool:
    # Takes the stripe (unless `wait`, only if it is free now); its release goes on `held`.
    thread_lock, fd = _stripe(lock_dir, number)
    if not thread_lock.acquire(blocking=wait):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException as exc:
        thread_lock.release()
        if isinstance(exc, BlockingIOError):
            return False
        raise
    held.callback(thread_lock.release)
    held.callback(fcntl.flock, fd, fcntl.LOCK_UN)
    return True


_stripes: dict[tuple[int, Path, int], tuple[threading.Lock, int]] = {}
_stripes_guard = threading.Lock()


def _stripe(lock_dir: Path, number: int) -> tuple[threading.Lock, int]:
    # Keyed by pid too: a forked worker must open its own files, not share its parent's locks.
    key = (os.getpid(), lock_dir, number)
    with _stripes_guard:
        if key not in _stripes:
            lock_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_dir / f"{number:02d}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            _stripes[key] = (threading.Lock(), fd)
        return _stripes[key]


def sweep_orphans(folders: list[Path], max_age: float = 3_600.0) -> list[Path]:
    """Remove temp files left by writers that died (their pid is gone) or are over `max_age`.

    Writers always run on the site's host, so a temp file whose pid no longer runs is an orphan.
    """
    removed: list[Path] = []
    cutoff = time.time() - max_age
    for folder in folders:
        if not folder.is_dir():
            continue
        for tmp in folder.rglob(f"{TEMP_PREFIX}*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                if not _writer_alive(tmp.name) or tmp.lstat().st_mtime < cutoff:
                    tmp.unlink()
                    removed.append(tmp)
    return removed


def _writer_alive(name: str) -> bool:
    pid_text = name[len(TEMP_PREFIX):].split("-", 1)[0]
    if not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it runs, as another user
    return True
