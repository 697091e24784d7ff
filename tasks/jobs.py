"""The tasks: thin wrappers that decode arguments, make one call into worker/, map errors.

The contract between hosts (every argument is JSON; none is secret):

    postrefresh.fetch(path, vid_id)                      queue fetch  (any host)
        path    the post's path relative to the site, e.g. "_posts/2022-04-13-kremlin.md"
        vid_id  its 11-character YouTube id
    postrefresh.write(path, vid_id, fields, fetched_at)  queue write  (the site's host)
        fields      the API's flat fields for the video ("statistics.viewCount": "…"),
                    or null when the API did not return it
        fetched_at  when the API answered (epoch seconds)
    postrefresh.thumbnail(vid_id)                        queue write  (the site's host)
    postrefresh.scan()                                   queue scan   (the site's host)
    postrefresh.publish()                                queue write  (the site's host)

Seconds-scale retries happen inside the API client (tenacity); a task is retried by Celery,
with a longer countdown, only after the client gave up, so no failure is retried twice at once.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery import Task

from tasks.app import max_countdown
from tasks.celery import app, settings
from tasks.runtime import ProcessRuntime
from worker.errors import (
    ApiKeyRejected,
    ApiUnreachable,
    PublishError,
    PushFailed,
    QuotaPaused,
    ThumbnailError,
)
from worker.outputs.site_data import SUMMARY_PATH, write_summary
from worker.refresh.scheduler import due_posts, plan
from worker.refresh.thumbnails import thumbnail_path, thumbnail_url, update_thumbnail
from worker.refresh.write import apply_answer
from worker.shared import activity, ledger
from worker.shared.counters import add_counts
from worker.shared.enqueue import enqueue_posts, release
from worker.shared.fetcher import units_today
from worker.shared.keys import queued_ttl
from worker.shared.steps import fetch_for_post, record_write
from worker.site import git
from worker.site.paths import display, thumbnail_file
from worker.video_id import is_video_id

log = logging.getLogger(__name__)
MAX_COUNTDOWN = max_countdown(settings)
# A queued post's dedupe key lives this long and every run of its fetch task renews it: the
# Redis transport can lose a message (a worker killed between popping it and recording it
# as unacked), and then the key must expire so that the next scan queues the post again.
QUEUED_TTL = queued_ttl(settings.queue.visibility_timeout)
# This process's resources: create_app's worker signals open and close them.
runtime: ProcessRuntime = app.runtime


@app.task(name="postrefresh.fetch", bind=True, max_retries=6)
def fetch(self: Task, path: str, vid_id: str) -> None:
    """Get the video's stats (usually from the shared cache) and queue the post's write."""
    rt = runtime.get()
    if not is_video_id(vid_id):
        activity.record_error(rt.redis, f"{path}: refused a fetch task with a bad vid_id")
        return
    try:
        rt.run(fetch_for_post(rt, path, vid_id, send_write=write.delay, send_thumbnail=thumbnail.delay))
    except QuotaPaused as exc:
        raise self.retry(countdown=_until(exc.resume_at), max_retries=None) from None
    except ApiUnreachable as exc:
        if self.request.retries >= (self.max_retries or 0):
            _give_up(rt.redis, path, str(exc))
            return
        raise self.retry(countdown=min(60 * 2 ** self.request.retries, MAX_COUNTDOWN)) from None
    except ApiKeyRejected as exc:
        _give_up(rt.redis, path, str(exc))


@app.task(name="postrefresh.write")
def write(path: str, vid_id: str, fields: dict[str, str] | None, fetched_at: float) -> str:
    """Apply the answer to the post on this host (refuses paths outside the site)."""
    rt = runtime.get()
    image = None
    if settings.thumbnails.rewrite_image and thumbnail_path(rt.site, settings, vid_id).exists():
        image = thumbnail_url(settings, vid_id)
    outcome = apply_answer(rt.site, rt.state, path, vid_id, fields, fetched_at, settings,
                           thumbnail=image)
    if outcome.status == "bad":
        log.warning("bad post %s: %s", path, outcome.reason)
    else:
        log.info("%s %s (%s)", outcome.status, display(path), vid_id)
    try:
        record_write(rt, path, vid_id, outcome)
    except redis.RedisError as exc:
        # The post is written; only the bookkeeping is lost (the queued key expires by itself).
        log.warning("%s written, but Redis is unreachable for its bookkeeping: %s", path, exc)
    return outcome.status


@app.task(name="postrefresh.thumbnail")
def thumbnail(vid_id: str) -> str:
    """Refresh one thumbnail on this host; a failure keeps the previous file."""
    rt = runtime.get()
    if not is_video_id(vid_id):
        return "refused"
    try:
        result = rt.run(update_thumbnail(rt.http, rt.state, rt.site, vid_id, settings))
    except (ThumbnailError, OSError) as exc:
        activity.record_error(rt.redis, f"thumbnail {vid_id}: {exc}")
        return "failed"
    add_counts(rt.redis, {"thumbnail_bytes": result.bytes_written})
    if settings.publish.commit and result.status == "stored":
        stored = thumbnail_file(settings.thumbnails.dir, vid_id)
        ledger.record(rt.redis, {stored: git.THUMBNAIL})
    return result.status


@app.task(name="postrefresh.scan")
def scan() -> dict[str, Any]:
    """Queue the posts due by their freshness tier, as many as today's quota allows."""
    rt = runtime.get()
    now = time.time()
    chosen = plan(due_posts(rt.site, settings, rt.state, now),
                  settings.api.daily_quota - units_today(rt.redis, now))
    report = enqueue_posts(rt.redis, ((d.path, d.vid_id) for d in chosen.chosen),
                           lambda path, vid: fetch.delay(path, vid), ttl=QUEUED_TTL)
    log.info("scan: %d due (%s), %d queued, %d already queued, %d wait for quota",
             sum(chosen.due_per_tier.values()), ", ".join(f"{t} {n}" for t, n in chosen.due_per_tier.items()),
             report.queued, report.already_queued, chosen.waiting)
    # The summary is of the posts as they are now: the writes just queued show in the next one.
    if settings.site.site_summary and write_summary(rt.site, settings) and settings.publish.commit:
        ledger.record(rt.redis, {SUMMARY_PATH: git.SUMMARY})
    return {"due": chosen.due_per_tier, "queued": report.queued, "waiting": chosen.waiting}


@app.task(name="postrefresh.publish")
def publish_written() -> str:
    """Commit (and push, if asked) the files the workers wrote since the last publish."""
    if not settings.publish.commit:
        return "off"
    rt = runtime.get()
    try:
        done = ledger.publish_recorded(rt.redis, rt.site, push=settings.publish.push)
    except (PublishError, PushFailed) as exc:
        activity.record_error(rt.redis, f"publish: {exc}")
        log.error("publish: %s", exc)
        return "failed"
    if done is None:
        return "busy"
    return done.commit or "nothing to commit"


def _until(moment: float) -> int:
    return int(min(max(moment - time.time(), 1.0), MAX_COUNTDOWN))


def _give_up(client: Any, path: str, reason: str) -> None:
    release(client, path)
    activity.record_error(client, f"{path}: {reason}")
    log.error("gave up on %s: %s", path, reason)
