"""Durable file writes: temp file in the same directory, fsync, rename; plus per-file locks."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

LOCK_STRIPES = 64
TEMP_PREFIX = ".postrefresh-"


def write_atomic(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Replace `path` with `data` so that readers see the old or the new bytes, never a mix.

    The temp file lives beside the target (same file system, so the rename is atomic), is
    fsynced before the rename, keeps the old file's mode and owner, and is removed on failure.
    With `sync_dir=False` the caller fsyncs the folder later (once for many files, see
    sync_directories): until then a crash may undo the rename, never tear the file.
    """
    directory = path.parent
    try:
        old = path.stat()
    except FileNotFoundError:
        old = None
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
            if old is not None:
                os.fchmod(tmp.fileno(), old.st_mode & 0o7777)
                _keep_owner(tmp.fileno(), old)
            else:
                os.fchmod(tmp.fileno(), 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    if sync_dir:
        sync_directories([directory])


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
def file_lock(lock_dir: Path, key: str) -> Iterator[None]:
    """Hold an exclusive lock for `key` (a site-relative path) among all threads and processes.

    Locks are striped over a fixed set of files so the lock folder never grows with the site;
    two posts may share a stripe, which only serialises them. A flock belongs to an open file,
    which the threads of a process share: a thread lock per stripe serialises those.
    """
    stripe = int(hashlib.blake2s(key.encode("utf-8", "surrogateescape"), digest_size=2).hexdigest(), 16)
    thread_lock, fd = _stripe(lock_dir, stripe % LOCK_STRIPES)
    with thread_lock:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


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
