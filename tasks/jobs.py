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

The tasks are shared tasks: they belong to whichever app loads this module (create_app includes
it), and each runs with the settings of the runtime its worker process opened, never a global.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from celery import Task, shared_task

from tasks.runtime import ProcessRuntime, Runtime
from worker.errors import ApiUnreachable, QuotaPaused
from worker.outputs.scan_and_fetch import fetch_or_give_up, scan_and_queue
from worker.refresh.apply import Answer
from worker.refresh.write import Outcome
from worker.shared.enqueue import PostRef
from worker.shared.steps import (
    publish_ledger,
    refresh_thumbnails,
    resume_countdown,
    retry_countdown,
    write_posts,
)


@shared_task(name="postrefresh.fetch_batch", bind=True, max_retries=6)
def fetch_batch(self: Task, posts: list[list[str]]) -> None:
    """Get the stats of up to 50 posts' videos in one window and queue their writes as one batch."""
    _fetch(self, [(path, vid_id) for path, vid_id in posts])


@shared_task(name="postrefresh.fetch", bind=True, max_retries=6)
def fetch(self: Task, path: str, vid_id: str) -> None:
    """One post, as messages queued before batches were: fetched as a batch of one."""
    _fetch(self, [(path, vid_id)])


@shared_task(name="postrefresh.write_batch", bind=True)
def write_batch(self: Task, answers: list[list[Any]], thumbnails: list[str]) -> dict[str, int]:
    """Apply many posts' answers on this host while their thumbnails download (refuses paths
    outside the site)."""
    decoded = [Answer(path, vid_id, fields, fetched_at) for path, vid_id, fields, fetched_at in answers]
    return dict(Counter(o.status for o in _write(self, decoded, thumbnails)))


@shared_task(name="postrefresh.write", bind=True)
def write(self: Task, path: str, vid_id: str, fields: dict[str, str] | None, fetched_at: float) -> str:
    """Apply one post's answer, as messages queued before batches were (refuses paths outside the site)."""
    return _write(self, [Answer(path, vid_id, fields, fetched_at)], [])[0].status


@shared_task(name="postrefresh.thumbnail", bind=True)
def thumbnail(self: Task, vid_id: str) -> str:
    """Refresh one thumbnail, as messages queued before batches were; a failure keeps the previous file."""
    rt = _runtime(self)
    return rt.run(refresh_thumbnails(rt, [vid_id]))[0]


@shared_task(name="postrefresh.scan", bind=True)
def scan(self: Task) -> dict[str, Any]:
    """Queue the posts due by their freshness tier, as many as today's quota allows."""
    return scan_and_queue(_runtime(self), fetch_batch.delay, time.time())


@shared_task(name="postrefresh.publish", bind=True)
def publish_written(self: Task) -> str:
    """Commit (and push, if asked) the files the workers wrote since the last publish."""
    return publish_ledger(_runtime(self))


def _runtime(task: Task) -> Runtime:
    # The runtime create_app's worker signals opened in this process, with the worker's settings.
    runtime: ProcessRuntime = task.app.runtime
    return runtime.get()


def _fetch(task: Task, posts: list[PostRef]) -> None:
    rt = _runtime(task)
    last_try = task.request.retries >= (task.max_retries or 0)
    try:
        rt.run(fetch_or_give_up(rt, posts, send_writes=write_batch.delay, last_try=last_try))
    except QuotaPaused as exc:
        raise task.retry(countdown=resume_countdown(rt.settings, exc.resume_at, time.time()),
                         max_retries=None) from None
    except ApiUnreachable:
        raise task.retry(countdown=retry_countdown(rt.settings, task.request.retries)) from None


def _write(task: Task, answers: list[Answer], thumbnails: list[str]) -> list[Outcome]:
    rt = _runtime(task)
    return rt.run(write_posts(rt, answers, thumbnails))
