"""State readers never see, in `<site>/.postrefresh/state.db` (SQLite): checks, absences, ETags, quota.

The folder holds a `.gitignore` of `*` so git never sees it, and Jekyll skips dot-folders.
One SiteState is used from one thread (the event loop's); SQLite's own locking lets a CLI
run and Celery workers on the same host share the file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from worker.errors import RunLocked, StateUnavailable
from worker.site.paths import STATE_DB, STATE_DIR
from worker.site.posts import FileIdentity

_SCHEMA = """
CREATE TABLE IF NOT EXISTS posts (path TEXT PRIMARY KEY, vid_id TEXT NOT NULL, checked_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS posts_vid ON posts (vid_id);
CREATE TABLE IF NOT EXISTS videos (vid_id TEXT PRIMARY KEY, absences INTEGER NOT NULL DEFAULT 0,
    absent_seen_at REAL, etag TEXT, last_modified TEXT, thumb_size TEXT);
CREATE TABLE IF NOT EXISTS quota (day TEXT PRIMARY KEY, units INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS problems (path BLOB PRIMARY KEY, reason TEXT NOT NULL, seen_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS post_facts (path BLOB PRIMARY KEY, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, facts TEXT);
"""
DISLIKE_PREFIX = "ryd:"
CHUNK = 500  # paths or ids per query: far below SQLite's bound-variable limit


def state_dir(site: Path) -> Path:
    """The site's private state folder, created with its `.gitignore` on first use."""
    folder = site / STATE_DIR
    folder.mkdir(exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return folder


def dislike_budget_day(day: str) -> str:
    """The quota table's row of the dislike API's budget on `day` (a UTC date, see times.utc_day).

    It shares the table with YouTube's Pacific days, under a prefix no date has: quota_days skips it.
    """
    return DISLIKE_PREFIX + day


def has_state(site: Path) -> bool:
    """Whether the site has a state database, i.e. was refreshed at least once."""
    return (site / STATE_DB).exists()


class SiteState:
    """The site's state database; close it (or use it as a context manager) when done."""

    def __init__(self, site: Path) -> None:
        self.folder = state_dir(site)
        self.path = site / STATE_DB
        try:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StateUnavailable(f"cannot open {self.path}: {exc}") from None

    def __enter__(self) -> SiteState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    @contextlib.contextmanager
    def run_lock(self) -> Iterator[None]:
        """Hold the site's run lock, or raise RunLocked at once if another run holds it."""
        with open(self.folder / "run.lock", "a+b") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise RunLocked(
                    f"another postrefresh run is refreshing {self.folder.parent}; "
                    "wait for it to finish, then run again"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def checked_times(self, paths: list[str]) -> dict[str, float]:
        """When each of `paths` was last checked (epoch seconds); paths never checked are left out."""
        rows = self._select_in("SELECT path, checked_at FROM posts WHERE path IN ({})",
                               [_key(path) for path in paths])
        return {_path(path): float(checked) for path, checked in rows}

    def mark_checked(self, items: Iterable[tuple[str, str]], when: float) -> None:
        """Record that these (path, vid_id) posts were checked at `when`."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO posts (path, vid_id, checked_at) VALUES (?, ?, ?) "
                "ON CONFLICT (path) DO UPDATE SET vid_id = excluded.vid_id, checked_at = excluded.checked_at",
                [(_key(path), vid_id, when) for path, vid_id in items],
            )

    def paths_of(self, vid_id: str) -> list[str]:
        """The posts last seen with this video id."""
        rows = self._db.execute("SELECT path FROM posts WHERE vid_id = ? ORDER BY path", (vid_id,))
        return [_path(row[0]) for row in rows]

    def absences(self, ids: list[str]) -> dict[str, int]:
        """How many checks in a row the API did not return each video (0 for those never missed)."""
        rows = self._select_in("SELECT vid_id, absences FROM videos WHERE vid_id IN ({})", ids)
        return {vid_id: 0 for vid_id in ids} | {str(vid_id): int(count) for vid_id, count in rows}

    def observe(self, answers: Iterable[tuple[str, bool]], fetched_at: float) -> dict[str, int]:
        """Record API answers (video id, present?) in one transaction; returns absences per id.

        Several posts may share one answer (same video, same `fetched_at`): an absence is
        counted once per answer, so only distinct checks make a video unavailable.
        """
        present_of = dict(answers)
        with self._transaction():
            rows = self._select_in("SELECT vid_id, absences, absent_seen_at FROM videos WHERE vid_id IN ({})",
                                   list(present_of))
            known = {str(vid_id): (int(count), seen_at) for vid_id, count, seen_at in rows}
            updates = []
            for vid_id, present in present_of.items():
                count, seen_at = known.get(vid_id, (0, None))
                if present:
                    count, seen_at = 0, None
                elif seen_at is None or fetched_at > seen_at:
                    count, seen_at = count + 1, fetched_at
                updates.append((vid_id, count, seen_at))
            self._db.executemany(
                "INSERT INTO videos (vid_id, absences, absent_seen_at) VALUES (?, ?, ?) "
                "ON CONFLICT (vid_id) DO UPDATE SET absences = excluded.absences, "
                "absent_seen_at = excluded.absent_seen_at",
                updates,
            )
        return {vid_id: count for vid_id, count, _ in updates}

    def thumbnail_validators(self, vid_id: str) -> tuple[str | None, str | None, str | None]:
        """The (ETag, Last-Modified, size) of the stored thumbnail, all None if unknown."""
        row = self._db.execute(
            "SELECT etag, last_modified, thumb_size FROM videos WHERE vid_id = ?", (vid_id,)
        ).fetchone()
        return (None, None, None) if row is None else (row[0], row[1], row[2])

    def set_thumbnail_validators(self, vid_id: str, etag: str | None, last_modified: str | None,
                                 size: str | None) -> None:
        """Remember the validators of the thumbnail just stored."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO videos (vid_id, etag, last_modified, thumb_size) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (vid_id) DO UPDATE SET etag = excluded.etag, "
                "last_modified = excluded.last_modified, thumb_size = excluded.thumb_size",
                (vid_id, etag, last_modified, size),
            )

    def add_units(self, day: str, units: int) -> None:
        """Add quota units spent on `day` (a Pacific date, see times.quota_day)."""
        if units:
            with self._transaction():
                self._db.execute(
                    "INSERT INTO quota (day, units) VALUES (?, ?) "
                    "ON CONFLICT (day) DO UPDATE SET units = units + excluded.units",
                    (day, units),
                )

    def units_on(self, day: str) -> int:
        """Quota units recorded as spent on `day`."""
        row = self._db.execute("SELECT units FROM quota WHERE day = ?", (day,)).fetchone()
        return 0 if row is None else int(row[0])

    def quota_days(self) -> list[tuple[str, int]]:
        """YouTube quota units spent per Pacific day, oldest day first (the dislike budget left out)."""
        rows = self._db.execute("SELECT day, units FROM quota WHERE day NOT LIKE ? ORDER BY day",
                                (DISLIKE_PREFIX + "%",))
        return [(str(day), int(units)) for day, units in rows]

    def replace_problems(self, bad: Iterable[tuple[str, str]], when: float | None = None) -> None:
        """Make (path, reason) the bad posts of the site, as the last full run found them."""
        seen_at = time.time() if when is None else when
        with self._transaction():
            self._db.execute("DELETE FROM problems")
            self._db.executemany(
                "INSERT OR REPLACE INTO problems (path, reason, seen_at) VALUES (?, ?, ?)",
                [(_key(path), reason, seen_at) for path, reason in bad])

    def new_problems(self, bad: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """The (path, reason) of `bad` that the last full check did not find bad."""
        known = {path for path, _, _ in self.problems()}
        return [(path, reason) for path, reason in bad if path not in known]

    def problems(self) -> list[tuple[str, str, float]]:
        """The bad posts the last full run found: (path, reason, when), by path."""
        rows = self._db.execute("SELECT path, reason, seen_at FROM problems ORDER BY path")
        return [(_path(path), reason, float(seen_at))
                for path, reason, seen_at in rows]

    def cached_facts(self, paths: list[str]) -> dict[str, tuple[FileIdentity, str | None]]:
        """What was remembered of each post (identity, facts as JSON or None); unknown paths left out."""
        rows = self._select_in("SELECT path, size, mtime_ns, inode, facts FROM post_facts WHERE path IN ({})",
                               [_key(p) for p in paths])
        return {_path(path): ((int(size), int(mtime), int(inode)), facts)
                for path, size, mtime, inode, facts in rows}

    def remember_facts(self, rows: Iterable[tuple[str, FileIdentity, str | None]]) -> None:
        """Remember (path, identity, facts as JSON, None for a post with none) in one transaction."""
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO post_facts (path, size, mtime_ns, inode, facts) "
                "VALUES (?, ?, ?, ?, ?)",
                [(_key(path), *identity, facts) for path, identity, facts in rows])

    def start_facts_walk(self) -> None:
        """Begin a walk over every post of the site: the facts of what it does not see go at its end."""
        with self._transaction():
            self._db.execute("CREATE TEMP TABLE IF NOT EXISTS walked (path BLOB PRIMARY KEY)")
            self._db.execute("DELETE FROM walked")

    def walked(self, paths: list[str]) -> None:
        """These paths exist: the walk keeps their facts."""
        with self._transaction():
            self._db.executemany("INSERT OR IGNORE INTO walked (path) VALUES (?)",
                                 [(_key(path),) for path in paths])

    def end_facts_walk(self) -> int:
        """Forget the facts of every post the walk did not see (deleted or renamed); how many went."""
        with self._transaction():
            gone = self._db.execute("DELETE FROM post_facts WHERE path NOT IN (SELECT path FROM walked)")
            self._db.execute("DELETE FROM walked")
        return gone.rowcount

    def _select_in(self, query: str, values: list[Any]) -> Iterator[tuple[Any, ...]]:
        """Rows of `query`, whose `IN ({})` is filled with `values`, CHUNK at a time."""
        for start in range(0, len(values), CHUNK):
            chunk = values[start:start + CHUNK]
            try:
                yield from self._db.execute(query.format(", ".join("?" * len(chunk))), chunk).fetchall()
            except sqlite3.Error as exc:
                raise StateUnavailable(f"cannot read {self.path}: {exc}; "
                                       "check its permissions and free disk space, then rerun") from None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StateUnavailable(
                f"cannot record state in {self.path}: {exc}; free disk space "
                "or fix permissions, then rerun") from None


def _key(path: str) -> bytes:
    # Paths may hold any bytes (non-UTF-8 file names): stored as the bytes they are.
    return os.fsencode(path)


def _path(key: bytes | str) -> str:
    return key if isinstance(key, str) else os.fsdecode(bytes(key))
