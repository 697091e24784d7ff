"""Updating one post from its video's fields: plan the changes, edit, keep history, write safely.

`update_post` is the one writer both `postrefresh run` and the Celery write task call: it
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
from typing import Any, Literal

from worker.errors import PostFormatError
from worker.frontmatter.editor import Edit, apply_edit, normalise
from worker.settings import Settings
from worker.site import history
from worker.site.files import file_lock, sweep_orphans, write_atomic
from worker.site.posts import Post, display, parse_post, posts_folders, read_regular, resolve_in_site
from worker.site.state import STATE_DIR, SiteState
from worker.times import utc_stamp
from worker.video_id import is_video_id

log = logging.getLogger(__name__)

UNAVAILABLE = "unavailable"
STATUS = "status"
Status = Literal["refreshed", "unchanged", "unavailable", "bad", "gone"]


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
    folders = [*posts, site / settings.thumbnails.dir, site / history.DATA_DIR]
    for orphan in sweep_orphans(folders):
        log.warning("removed %s, left by an interrupted write", display(str(orphan.relative_to(site))))


def plan_changes(mapping: Mapping[Any, Any], video: Mapping[str, str] | None, absences: int,
                 settings: Settings, thumbnail: str | None = None) -> dict[str, str | None]:
    """The values to change in a post (None deletes a key), given its video's API fields.

    `video` is None when the API did not return the video; `absences` counts the checks in a
    row (this one included) that it was missing.
    """
    if video is None:
        gone = absences >= settings.site.absent_runs and mapping.get(STATUS) != UNAVAILABLE
        return {STATUS: UNAVAILABLE} if gone else {}
    changes: dict[str, str | None] = {}
    for key, api_path in settings.refreshed_fields.items():
        new = video.get(api_path)
        if new is not None and normalise(mapping.get(key)) != new:
            changes[key] = new
    for key, api_path in settings.site.fill_empty.items():
        new = video.get(api_path)
        if new and key in mapping and mapping[key] in ("", None):
            changes[key] = new
    if thumbnail is not None and mapping.get("image") != thumbnail:
        changes["image"] = thumbnail
    if STATUS in mapping and mapping[STATUS] == UNAVAILABLE:
        changes[STATUS] = None
    return changes


def update_post(site: Path, rel: str, vid_id: str, video: Mapping[str, str] | None, absences: int,
                settings: Settings, now: str, *, dry_run: bool = False,
                thumbnail: str | None = None, known: Post | None = None,
                sync_dir: bool = True) -> Outcome:
    """Refresh one post on disk (or only compute its diff with `dry_run`).

    `known` is the post as read earlier; it saves a parse when the file has not changed since.
    `sync_dir=False` leaves the folder's fsync to the caller (see writer.sync_directories).
    """
    lock_dir = site / STATE_DIR / "locks"
    try:
        path = resolve_in_site(site, rel)
        with file_lock(lock_dir, rel):
            return _update_locked(site, path, rel, vid_id, video, absences, settings, now,
                                  dry_run, thumbnail, known, sync_dir)
    except PostFormatError as exc:
        return Outcome(rel, vid_id, "bad", str(exc))
    except FileNotFoundError:
        return Outcome(rel, vid_id, "gone", "the post was deleted or renamed before it was written")
    except OSError as exc:
        return Outcome(rel, vid_id, "bad", f"cannot write: {exc.strerror}")


def apply_answer(site: Path, state: SiteState, rel: str, vid_id: str, video: Mapping[str, str] | None,
                 fetched_at: float, settings: Settings, *, thumbnail: str | None = None) -> Outcome:
    """The distributed write step: refuse a path outside the site, count the answer, update."""
    try:
        resolve_in_site(site, rel)
    except PostFormatError as exc:
        return Outcome(rel, vid_id, "bad", f"refused: {exc}")
    if not is_video_id(vid_id):
        return Outcome(rel, None, "bad", "refused: the task's vid_id is not a YouTube id")
    absences = state.observe([(vid_id, video is not None)], fetched_at)[vid_id]
    now = time.time()
    outcome = update_post(site, rel, vid_id, video, absences, settings, utc_stamp(now), thumbnail=thumbnail)
    if outcome.status not in ("bad", "gone"):
        state.mark_checked([(rel, vid_id)], now)
    return outcome


def _update_locked(site: Path, path: Path, rel: str, vid_id: str, video: Mapping[str, str] | None,
                   absences: int, settings: Settings, now: str, dry_run: bool,
                   thumbnail: str | None, known: Post | None, sync_dir: bool) -> Outcome:
    data = read_regular(path)
    post = known if known is not None and known.data == data else parse_post(rel, data)
    if post is None or post.vid_id != vid_id:
        return Outcome(rel, vid_id, "gone", "its vid_id changed since it was queued; next run takes it")
    changes = plan_changes(post.mapping, video, absences, settings, thumbnail)
    if not changes:
        if video is None and post.mapping.get(STATUS) == UNAVAILABLE:
            return Outcome(rel, vid_id, "unavailable")
        runs = settings.site.absent_runs
        note = f"missing from the API ({absences} of {runs} checks)" if video is None else ""
        return Outcome(rel, vid_id, "unchanged", note)
    entry = history.entry_for(post.mapping, changes)
    changes[history.REFRESHED_AT] = now
    in_post = settings.site.history_mode == "frontmatter"
    edit = Edit(values=changes, history_entry=entry if in_post else None,
                history_keep=settings.site.history_keep)
    result = apply_edit(data, edit, post.parsed)
    status: Status = "unavailable" if changes.get(STATUS) == UNAVAILABLE else "refreshed"
    if dry_run:
        return Outcome(rel, vid_id, status, diff=_diff(rel, data, result.data))
    to_csv = result.dropped_history if in_post else [entry] if entry else []
    if to_csv:
        history.append_csv(site, vid_id, to_csv)
    write_atomic(path, result.data, sync_dir=sync_dir)
    log.debug("%s %s (%s): %s", status, display(rel), vid_id, ", ".join(sorted(changes)))
    return Outcome(rel, vid_id, status)


def _diff(rel: str, old: bytes, new: bytes) -> str:
    name = display(rel)
    lines = difflib.unified_diff(
        old.decode("utf-8", "replace").splitlines(keepends=True),
        new.decode("utf-8", "replace").splitlines(keepends=True),
        fromfile=f"a/{name}", tofile=f"b/{name}",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
