"""The tasks: thin wrappers that decode arguments, make one call into worker/, map errors.

The contract between hosts (every argument is JSON; none is secret):

    postrefresh.fetch_batch(posts)                       queue fetch  (any host)
        posts   [[path, vid_id], ...] for up to 50 distinct videos (one videos.list call);
                path is relative to the site, e.g. "_posts/2022-04-13-kremlin.md", vid_id
                the post's 11-character YouTube id
    postrefresh.write_batch(answers, thumbnails)         queue write  (the site's host)
        answers    [[path, vid_id, fields, fetched_at], ...]: fields are the API's flat
                   fields for the video ("statistics.viewCount": "…"), or null when the API
                   did not return it; fetched_at is when the API answered (epoch seconds)
        thumbnails [vid_id, ...] whose thumbnails to refresh (each video once per hour)
    postrefresh.scan()                                   queue scan   (the site's host)
    postrefresh.publish()                                queue write  (the site's host)

One message carries a batch so that neither enqueue nor the one writer pays a message per
post. The per-post tasks of earlier versions stay registered, so the messages they queued
still run after an upgrade: postrefresh.fetch(path, vid_id), postrefresh.write(path, vid_id,
fields, fetched_at) and postrefresh.thumbnail(vid_id), each a batch of one.

Seconds-scale retries happen inside the API client (tenacity); a task is retried by Celery,
with a longer countdown, only after the client gave up, so no failure is retried twice at once.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

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
)
from worker.outputs.notify import Events
from worker.outputs.site_data import write_summary
from worker.refresh.apply import Answer
from worker.refresh.scheduler import scan_site
from worker.refresh.write import Outcome
from worker.shared import activity, ledger
from worker.shared.enqueue import PostRef, enqueue_posts, release
from worker.shared.fetcher import units_today
from worker.shared.keys import queued_ttl
from worker.shared.steps import fetch_for_posts, refresh_thumbnails, write_posts
from worker.site import git
from worker.site.paths import summary_file
from worker.times import utc_stamp
from worker.video_id import is_video_id

log = logging.getLogger(__name__)
MAX_COUNTDOWN = max_countdown(settings)
# A queued post's dedupe key lives this long and every run of its fetch task renews it: the
# Redis transport can lose a message (a worker killed between popping it and recording it
# as unacked), and then the key must expire so that the next scan queues the post again.
QUEUED_TTL = queued_ttl(settings.queue.visibility_timeout)
# This process's resources: create_app's worker signals open and close them.
runtime: ProcessRuntime = app.runtime


@app.task(name="postrefresh.fetch_batch", bind=True, max_retries=6)
def fetch_batch(self: Task, posts: list[list[str]]) -> None:
    """Get the stats of up to 50 posts' videos in one window and queue their writes as one batch."""
    _fetch(self, [(path, vid_id) for path, vid_id in posts])


@app.task(name="postrefresh.fetch", bind=True, max_retries=6)
def fetch(self: Task, path: str, vid_id: str) -> None:
    """One post, as messages queued before batches were: fetched as a batch of one."""
    _fetch(self, [(path, vid_id)])


@app.task(name="postrefresh.write_batch")
def write_batch(answers: list[list[Any]], thumbnails: list[str]) -> dict[str, int]:
    """Apply many posts' answers on this host while their thumbnails download (refuses paths
    outside the site)."""
    decoded = [Answer(path, vid_id, fields, fetched_at) for path, vid_id, fields, fetched_at in answers]
    return dict(Counter(o.status for o in _write(decoded, thumbnails)))


@app.task(name="postrefresh.write")
def write(path: str, vid_id: str, fields: dict[str, str] | None, fetched_at: float) -> str:
    """Apply one post's answer, as messages queued before batches were (refuses paths outside the site)."""
    return _write([Answer(path, vid_id, fields, fetched_at)], [])[0].status


@app.task(name="postrefresh.thumbnail")
def thumbnail(vid_id: str) -> str:
    """Refresh one thumbnail, as messages queued before batches were; a failure keeps the previous file."""
    rt = runtime.get()
    return rt.run(refresh_thumbnails(rt, [vid_id]))[0]


@app.task(name="postrefresh.scan")
def scan() -> dict[str, Any]:
    """Queue the posts due by their freshness tier, as many as today's quota allows."""
    rt = runtime.get()
    now = time.time()
    units_left = settings.api.daily_quota - units_today(rt.redis, now)
    scanned = scan_site(rt.site, settings, rt.state, now, units_left)
    chosen = scanned.plan
    if rt.notifier is not None:
        rt.notifier.tell(Events(site=str(settings.site.site), became_bad=scanned.became_bad))
    report = enqueue_posts(rt.redis, ((d.path, d.vid_id) for d in chosen.chosen), fetch_batch.delay,
                           ttl=QUEUED_TTL)
    log.info("scan: %d due (%s), %d queued, %d already queued, %d wait for quota",
             sum(chosen.due_per_tier.values()), ", ".join(f"{t} {n}" for t, n in chosen.due_per_tier.items()),
             report.queued, report.already_queued, chosen.waiting)
    # The summary is of the posts as they are now: the writes just queued show in the next one.
    written = write_summary(rt.site, settings) if settings.site.site_summary else None
    if written is not None and settings.publish.commit:
        ledger.record(rt.redis, {summary_file(settings.site.data_dir): git.SUMMARY})
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


def _fetch(task: Task, posts: list[PostRef]) -> None:
    rt = runtime.get()
    good: list[PostRef] = []
    for path, vid_id in posts:
        if is_video_id(vid_id):
            good.append((path, vid_id))
        else:
            activity.record_error(rt.redis, f"{path}: refused a fetch task with a bad vid_id")
    if not good:
        return
    try:
        rt.run(fetch_for_posts(rt, good, send_writes=write_batch.delay))
    except QuotaPaused as exc:
        if exc.began and rt.notifier is not None:  # one message for the pause, not one per task
            paused = Events(site=str(settings.site.site), quota_paused_until=utc_stamp(exc.resume_at))
            rt.notifier.tell(paused)
        raise task.retry(countdown=_until(exc.resume_at), max_retries=None) from None
    except ApiUnreachable as exc:
        if task.request.retries >= (task.max_retries or 0):
            _give_up(rt.redis, good, str(exc))
            return
        raise task.retry(countdown=min(60 * 2 ** task.request.retries, MAX_COUNTDOWN)) from None
    except ApiKeyRejected as exc:
        _give_up(rt.redis, good, str(exc))


def _write(answers: list[Answer], thumbnails: list[str]) -> list[Outcome]:
    rt = runtime.get()
    return rt.run(write_posts(rt, answers, thumbnails))


def _until(moment: float) -> int:
    return int(min(max(moment - time.time(), 1.0), MAX_COUNTDOWN))


def _give_up(client: Any, posts: list[PostRef], reason: str) -> None:
    release(client, [path for path, _ in posts])
    for path, _ in posts:
        activity.record_error(client, f"{path}: {reason}")
        log.error("gave up on %s: %s", path, reason)
