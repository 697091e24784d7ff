"""Writing one post from its video's fields: read it under its lock, edit, keep history, write safely.

`PostWriter.write` is the one writer both `postrefresh run` and the Celery write task call: it
reads the post under its file lock, so what it edits is what is on disk (a person's edit
made meanwhile is kept and the refresh re-applied on top of it), then writes atomically.
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from worker.errors import PostFormatError
from worker.frontmatter.editor import Edit, apply_edit
from worker.refresh.changes import STATUS, UNAVAILABLE, held_back, plan_changes
from worker.settings import Settings
from worker.site import history
from worker.site.files import file_lock, sweep_orphans, write_atomic
from worker.site.paths import DATA_DIR, display, posts_folders, resolve_in_site, thumbnail_folder
from worker.site.posts import Post, parse_post, read_regular
from worker.site.state import STATE_DIR, SiteState
from worker.times import parse_time, utc_stamp
from worker.video_id import is_video_id

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


def sweep_site(site: Path, settings: Settings) -> None:
    """Remove temp files a killed writer left in the folders postrefresh writes in."""
    posts = [site / folder for folder in posts_folders(settings.site.posts_globs)]
    folders = [*posts, site / thumbnail_folder(settings.thumbnails.dir), site / DATA_DIR]
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
    """Writes posts of one site with what is the same for a batch: settings, stamp, dry run.

    `sync_dir=False` leaves the folder's fsync to the caller (site/files.py: sync_directories).
    """

    def __init__(self, site: Path, settings: Settings, stamp: str, *, dry_run: bool = False,
                 sync_dir: bool = True) -> None:
        self.site = site
        self.settings = settings
        self.stamp = stamp
        self.now = parse_time(stamp) or time.time()
        self.dry_run = dry_run
        self.sync_dir = sync_dir
        self.lock_dir = site / STATE_DIR / "locks"

    def write(self, request: WriteRequest, *, resolved: Path | None = None) -> Outcome:
        """Refresh one post on disk (or only compute its diff with `dry_run`).

        `resolved` is the post's real path when the caller has checked it already.
        """
        rel, vid_id = request.path, request.vid_id
        try:
            path = resolved or resolve_in_site(self.site, rel)
            with file_lock(self.lock_dir, rel):
                return self._edit(path, request)
        except PostFormatError as exc:
            return Outcome(rel, vid_id, "bad", str(exc))
        except FileNotFoundError:
            return Outcome(rel, vid_id, "gone", "the post was deleted or renamed before it was written")
        except OSError as exc:
            return Outcome(rel, vid_id, "bad", f"cannot write: {exc.strerror}")

    def _edit(self, path: Path, request: WriteRequest) -> Outcome:
        rel, vid_id, video, absences = request.path, request.vid_id, request.video, request.absences
        settings = self.settings
        data = read_regular(path)
        known = request.known
        post = known if known is not None and known.data == data else parse_post(rel, data)
        if post is None or post.vid_id != vid_id:
            return Outcome(rel, vid_id, "gone", "its vid_id changed since it was queued; next run takes it")
        changes = plan_changes(post.mapping, video, absences, settings, request.thumbnail)
        if not changes:
            if video is None and post.mapping.get(STATUS) == UNAVAILABLE:
                return Outcome(rel, vid_id, "unavailable")
            missing = f"missing from the API ({absences} of {settings.site.absent_runs} checks)"
            return Outcome(rel, vid_id, "unchanged", missing if video is None else "")
        if held_back(post.mapping, changes, settings, self.now):
            return Outcome(rel, vid_id, "held", "moved less than min_change")
        entry = history.entry_for(post.mapping, changes)
        changes[history.REFRESHED_AT] = self.stamp
        in_post = settings.site.history_mode == "frontmatter"
        edit = Edit(values=changes, history_entry=entry if in_post else None,
                    history_keep=settings.site.history_keep)
        result = apply_edit(data, edit, post.parsed)
        status: Status = "unavailable" if changes.get(STATUS) == UNAVAILABLE else "refreshed"
        if self.dry_run:
            return Outcome(rel, vid_id, status, diff=_diff(rel, data, result.data))
        to_csv = result.dropped_history if in_post else [entry] if entry else []
        if to_csv:
            history.append_csv(self.site, vid_id, to_csv)
        write_atomic(path, result.data, sync_dir=self.sync_dir)
        log.debug("%s %s (%s): %s", status, display(rel), vid_id, ", ".join(sorted(changes)))
        return Outcome(rel, vid_id, status)


def apply_answer(site: Path, state: SiteState, rel: str, vid_id: str, video: Mapping[str, str] | None,
                 fetched_at: float, settings: Settings, *, thumbnail: str | None = None) -> Outcome:
    """The distributed write step: refuse a path outside the site, count the answer, update."""
    try:
        path = resolve_in_site(site, rel)
    except PostFormatError as exc:
        return Outcome(rel, vid_id, "bad", f"refused: {exc}")
    if not is_video_id(vid_id):
        return Outcome(rel, None, "bad", "refused: the task's vid_id is not a YouTube id")
    absences = state.observe([(vid_id, video is not None)], fetched_at)[vid_id]
    now = time.time()
    writer = PostWriter(site, settings, utc_stamp(now))
    outcome = writer.write(WriteRequest(rel, vid_id, video, absences, thumbnail=thumbnail), resolved=path)
    if outcome.status not in ("bad", "gone"):
        state.mark_checked([(rel, vid_id)], now)
    return outcome


def _diff(rel: str, old: bytes, new: bytes) -> str:
    name = display(rel)
    lines = difflib.unified_diff(
        old.decode("utf-8", "replace").splitlines(keepends=True),
        new.decode("utf-8", "replace").splitlines(keepends=True),
        fromfile=f"a/{name}", tofile=f"b/{name}",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
