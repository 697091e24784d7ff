"""Writing posts from their videos' fields: read each under its lock, edit, keep history, write safely.

`PostWriter` is the one writer both `postrefresh run` and the Celery write task call: it
reads a post under its file lock, so what it edits is what is on disk (a person's edit
made meanwhile is kept and the refresh re-applied on top of it), then writes atomically;
`write_batch` does so for many posts at once, their fsyncs concurrent.
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from worker.errors import PostFormatError
from worker.frontmatter.editor import Edit, apply_edit
from worker.refresh.changes import STATUS, UNAVAILABLE, held_back, plan_changes
from worker.settings import Settings
from worker.site import history
from worker.site.files import free_file_locks, sweep_orphans, write_many
from worker.site.paths import LOCKS_DIR, display, posts_folders, resolve_in_site, thumbnail_folder
from worker.site.posts import Post, parse_post, read_regular
from worker.times import parse_time

log = logging.getLogger(__name__)

Status = Literal["refreshed", "unchanged", "held", "unavailable", "bad", "gone"]  # held: below min_change


@dataclass(frozen=True)
class Outcome:
    """What happened to one post; `diff` is the unified diff a dry run would write."""

    path: str
    vid_id: str | None
    status: Status
    reason: str = ""
    diff: str = ""
    written: bool = False  # the post's new bytes are on disk (durably)


def sweep_site(site: Path, settings: Settings) -> None:
    """Remove temp files a killed writer left in the folders postrefresh writes in."""
    posts = [site / folder for folder in posts_folders(settings.site.posts_globs)]
    folders = [*posts, site / thumbnail_folder(settings.thumbnails.dir),
               site / settings.site.data_dir, site / settings.site.history_dir]
    for orphan in sweep_orphans(folders):
        log.warning("removed %s, left by an interrupted write", display(str(orphan.relative_to(site))))


@dataclass(frozen=True)
class WriteRequest:
    """What to write, for which post: its video's fields (None: the API did not return it).

    `absences` counts the checks in a row (this one included) that the video was missing;
    `known` is the post as read earlier, which saves a parse when the file has not changed since.
    """

    path: str
    vid_id: str
    video: Mapping[str, str] | None
    absences: int
    thumbnail: str | None = None
    known: Post | None = None


class PostWriter:
    """Writes posts of one site with what is the same for a batch: settings, stamp, dry run."""

    def __init__(self, site: Path, settings: Settings, stamp: str, *, dry_run: bool = False) -> None:
        self.site = site
        self.settings = settings
        self.stamp = stamp
        self.now = parse_time(stamp) or time.time()
        self.dry_run = dry_run
        self.lock_dir = site / LOCKS_DIR

    def write(self, request: WriteRequest, *, resolved: Path | None = None) -> Outcome:
        """Refresh one post on disk (or only compute its diff with `dry_run`).

        `resolved` is the post's real path when the caller has checked it already.
        """
        return self._write_all([(request, resolved)])[0]

    def write_batch(self, requests: Sequence[WriteRequest],
                    resolved: Sequence[Path | None] | None = None) -> list[Outcome]:
        """Refresh many posts at once; their outcomes in the same order, each post durable first.

        The posts whose locks are free are taken together (the others next), each lock held from
        the read to the rename, and their files written as one batch (site/files.py: write_many).
        A post named twice is written twice, the second time over the first. `resolved` are the
        posts' real paths where the caller has checked them already (None: resolve it here).
        """
        paths: Sequence[Path | None] = resolved if resolved is not None else [None] * len(requests)
        return self._write_all(list(zip(requests, paths, strict=True)))

    def _write_all(self, items: Sequence[tuple[WriteRequest, Path | None]]) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        targets: list[_Target] = []
        for index, (request, resolved) in enumerate(items):
            try:
                targets.append(_Target(index, request, resolved or resolve_in_site(self.site, request.path)))
            except (PostFormatError, OSError) as exc:
                outcomes[index] = _failed(request, exc)
        while targets:
            now, targets = _once_each(targets)
            while now:
                with free_file_locks(self.lock_dir, [target.request.path for target in now]) as free:
                    ready = [target for target in now if target.request.path in free]
                    now = [target for target in now if target.request.path not in free]
                    outcomes.update(self._write_locked(ready))
        return [outcomes[index] for index in range(len(items))]

    def _write_locked(self, targets: list[_Target]) -> list[tuple[int, Outcome]]:
        # The posts' locks are held: from the read to the rename, what is edited is what is on disk.
        done: list[tuple[int, Outcome]] = []
        plans: list[tuple[_Target, _Plan]] = []
        for target in targets:
            try:
                plans.append((target, self._edit(target.path, target.request)))
            except (PostFormatError, OSError) as exc:
                done.append((target.index, _failed(target.request, exc)))
        writes = [(target, plan, plan.data) for target, plan in plans if plan.data is not None]
        failures = write_many([(target.path, data) for target, _, data in writes])
        done.extend((target.index, plan.outcome) for target, plan in plans if plan.data is None)
        for (target, plan, _), failure in zip(writes, failures, strict=True):
            if failure is not None:
                done.append((target.index, _failed(target.request, failure)))
                continue
            outcome = replace(plan.outcome, written=True)
            log.debug("%s %s (%s): %s", outcome.status, display(outcome.path), outcome.vid_id, plan.changed)
            done.append((target.index, outcome))
        return done

    def _edit(self, path: Path, request: WriteRequest) -> _Plan:
        rel, vid_id, video, absences = request.path, request.vid_id, request.video, request.absences
        settings = self.settings
        data = read_regular(path)
        known = request.known
        fresh = known is not None and known.data == data
        post = known if fresh else parse_post(rel, data, settings.site.id_key)
        if post is None or post.vid_id != vid_id:
            gone = "its vid_id changed since it was queued; next run takes it"
            return _Plan(Outcome(rel, vid_id, "gone", gone))
        changes = plan_changes(post.mapping, video, absences, settings, request.thumbnail)
        if not changes:
            if video is None and post.mapping.get(STATUS) == UNAVAILABLE:
                return _Plan(Outcome(rel, vid_id, "unavailable"))
            missing = f"missing from the API ({absences} of {settings.site.absent_runs} checks)"
            return _Plan(Outcome(rel, vid_id, "unchanged", missing if video is None else ""))
        if held_back(post.mapping, changes, settings, self.now):
            return _Plan(Outcome(rel, vid_id, "held", "moved less than min_change"))
        entry = history.entry_for(post.mapping, changes)
        changes[history.REFRESHED_AT] = self.stamp
        in_post = settings.site.history_mode == "frontmatter"
        edit = Edit(values=changes, history_entry=entry if in_post else None,
                    history_keep=settings.site.history_keep)
        result = apply_edit(data, edit, post.parsed)
        status: Status = "unavailable" if changes.get(STATUS) == UNAVAILABLE else "refreshed"
        if self.dry_run:
            return _Plan(Outcome(rel, vid_id, status, diff=post_diff(rel, data, result.data)))
        to_csv = result.dropped_history if in_post else [entry] if entry else []
        if to_csv:
            history.append_csv(self.site, settings.site.history_dir, vid_id, to_csv)
        return _Plan(Outcome(rel, vid_id, status), result.data, ", ".join(sorted(changes)))


@dataclass(frozen=True)
class _Target:
    """A request with its index in the caller's list and its real path."""

    index: int
    request: WriteRequest
    path: Path


@dataclass(frozen=True)
class _Plan:
    """What editing one post came to: its outcome and, when it must be written, the new bytes."""

    outcome: Outcome
    data: bytes | None = None
    changed: str = ""


def _once_each(targets: list[_Target]) -> tuple[list[_Target], list[_Target]]:
    # A file named twice in one batch waits for the next round, so each edit reads the last one.
    now: dict[Path, _Target] = {}
    later: list[_Target] = []
    for target in targets:
        if target.path in now:
            later.append(target)
        else:
            now[target.path] = target
    return list(now.values()), later


def _failed(request: WriteRequest, exc: PostFormatError | OSError) -> Outcome:
    rel, vid_id = request.path, request.vid_id
    if isinstance(exc, PostFormatError):
        return Outcome(rel, vid_id, "bad", str(exc))
    if isinstance(exc, FileNotFoundError):
        return Outcome(rel, vid_id, "gone", "the post was deleted or renamed before it was written")
    return Outcome(rel, vid_id, "bad", f"cannot write: {exc.strerror}")


def post_diff(rel: str, old: bytes, new: bytes) -> str:
    """The unified diff (a/ and b/ as git names them) of a post's old and new bytes, as text."""
    name = display(rel)
    lines = difflib.unified_diff(
        old.decode("utf-8", "replace").splitlines(keepends=True),
        new.decode("utf-8", "replace").splitlines(keepends=True),
        fromfile=f"a/{name}", tofile=f"b/{name}",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
