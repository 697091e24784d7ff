"""The steps the Celery tasks call, as plain functions of one worker process's resources.

A task decodes its arguments, makes one call here (or in outputs/scan_and_fetch.py, for the steps
that also tell a person) and maps the errors to retries, with the countdowns said here. Sending
a task is passed in (the Celery layer sends it), as for `enqueue_posts`: this module knows
Redis, the fetcher and the site only.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import httpx
import redis

from worker.errors import PublishError, PushFailed
from worker.refresh.apply import Answer, apply_answers
from worker.refresh.thumbnails import stored_files, update_thumbnails
from worker.refresh.write import Outcome
from worker.settings import Settings
from worker.shared import activity, ledger
from worker.shared.counters import add_counts
from worker.shared.dislikes import dislike_fields
from worker.shared.enqueue import PostRef, release, renew
from worker.shared.fetcher import SharedFetcher
from worker.shared.keys import KEY_REJECTED_KEY, KEY_REJECTED_TTL, THUMBNAIL_TTL, thumbnail_key
from worker.site import git
from worker.site.paths import bad_post_line, display
from worker.site.state import SiteState
from worker.video_id import is_video_id

log = logging.getLogger(__name__)

# One post's answer as the write tasks take it: (path, vid_id, fields or None, fetched_at).
AnswerMessage = tuple[str, str, dict[str, str] | None, float]
# One message to the site's host: the batch's answers, and the videos whose thumbnails to refresh.
SendWrites = Callable[[list[AnswerMessage], list[str]], object]


class Resources(Protocol):
    """What one worker process holds for its tasks (tasks/runtime.py builds it)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def redis(self) -> redis.Redis: ...

    @property
    def http(self) -> httpx.AsyncClient: ...

    @property
    def fetcher(self) -> SharedFetcher: ...

    @property
    def site(self) -> Path: ...

    @property
    def state(self) -> SiteState: ...


async def fetch_for_posts(rt: Resources, posts: list[PostRef], *, send_writes: SendWrites) -> None:
    """Get the videos' answers (from the cache or shared windows) and queue one write of the
    posts and, once per video, their thumbnails; raises QuotaPaused, ApiUnreachable or ApiKeyRejected."""
    s = rt.settings
    renew(rt.redis, [path for path, _ in posts], s.queue.visibility_timeout)
    answers = await rt.fetcher.fetch(vid for _, vid in posts)
    fields = {vid: answer.fields for vid, answer in answers.items()}
    if s.dislikes.enabled:
        for vid, stats in fields.items():
            if stats is not None:
                fields[vid] = {**stats, **await dislike_fields(rt.http, rt.redis, s, vid)}
    thumbnails: list[str] = []
    if s.thumbnails.enabled:
        # A task killed after this claim and before its message is sent leaves the thumbnail for
        # the next claim (THUMBNAIL_TTL); the posts themselves are written when it runs again.
        found = [vid for vid, answer in answers.items() if answer.fields is not None]
        claim = rt.redis.pipeline(transaction=False)
        for vid in found:
            claim.set(thumbnail_key(vid), "1", nx=True, ex=THUMBNAIL_TTL)
        thumbnails = [vid for vid, ok in zip(found, claim.execute(), strict=True) if ok]
    send_writes([(path, vid, fields[vid], answers[vid].fetched_at) for path, vid in posts], thumbnails)


async def write_posts(rt: Resources, answers: list[Answer], thumbnails: list[str]) -> list[Outcome]:
    """Write the posts and record them while their videos' thumbnails download; one outcome each.

    The posts are recorded before the downloads are awaited, so a slow thumbnail host can
    delay only the thumbnails.
    """
    downloads = asyncio.ensure_future(refresh_thumbnails(rt, thumbnails))
    try:
        outcomes = await apply_answers(rt.site, rt.state, answers, rt.settings)
        for outcome in outcomes:
            if outcome.status == "bad":
                log.warning("%s", bad_post_line(outcome.path, outcome.reason))
            else:
                log.info("%s %s (%s)", outcome.status, display(outcome.path), outcome.vid_id)
        try:
            record_writes(rt, outcomes)
        except redis.RedisError as exc:
            # The posts are written; only the bookkeeping is lost (the queued keys expire by themselves).
            log.warning("%d posts written, but Redis is unreachable for their bookkeeping: %s",
                        len(outcomes), exc)
    finally:
        await downloads
    return outcomes


def record_writes(rt: Resources, outcomes: list[Outcome]) -> None:
    """The bookkeeping after posts' writes: no longer queued, their outcomes, their files to publish."""
    release(rt.redis, [o.path for o in outcomes])
    activity.record_outcomes(rt.redis, outcomes)
    add_counts(rt.redis, Counter(f"posts:{o.status}" for o in outcomes))
    if rt.settings.publish.commit:
        written: dict[str, str] = {}
        for o in outcomes:
            if o.written:
                written.update(git.post_files(rt.site, rt.settings.site.history_dir,
                                              o.path, o.vid_id, o.status))
        ledger.record(rt.redis, written)


async def refresh_thumbnails(rt: Resources, vid_ids: list[str]) -> list[str]:
    """Refresh thumbnails, a few at a time; a failure keeps the previous file. One status each."""
    s = rt.settings
    good = [vid for vid in vid_ids if is_video_id(vid)]
    done = await update_thumbnails(rt.http, rt.state, rt.site, s, good,
                                   asyncio.Semaphore(s.thumbnails.concurrency))
    for r in done:
        if r.status == "failed":
            activity.record_error(rt.redis, f"thumbnail {r.vid_id}: {r.error}")
    add_counts(rt.redis, {"thumbnail_bytes": sum(r.bytes_written for r in done)})
    if s.publish.commit:
        ledger.record(rt.redis, stored_files(s, done))
    statuses = iter(r.status for r in done)
    return [next(statuses) if is_video_id(vid) else "refused" for vid in vid_ids]


def publish_ledger(rt: Resources) -> str:
    """Commit (and push, if asked) the files the workers wrote since the last publish.

    Returns "off" (publish.commit is not set), "busy" (another publish runs), "failed" (noted in
    the last errors), "nothing to commit", or the commit made.
    """
    if not rt.settings.publish.commit:
        return "off"
    try:
        done = ledger.publish_recorded(rt.redis, rt.site, push=rt.settings.publish.push)
    except (PublishError, PushFailed) as exc:
        activity.record_error(rt.redis, f"publish: {exc}")
        log.error("publish: %s", exc)
        return "failed"
    if done is None:
        return "busy"
    return done.commit or "nothing to commit"


def refuse_bad_ids(client: redis.Redis, posts: list[PostRef]) -> list[PostRef]:
    """The posts whose vid_id is an id; each other one is noted in the last errors."""
    good: list[PostRef] = []
    for path, vid_id in posts:
        if is_video_id(vid_id):
            good.append((path, vid_id))
        else:
            activity.record_error(client, f"{path}: refused a fetch task with a bad vid_id")
    return good


def give_up(client: redis.Redis, posts: list[PostRef], reason: str) -> None:
    """Stop retrying posts' fetch: no longer queued (the next scan may queue them), reason noted."""
    release(client, [path for path, _ in posts])
    for path, _ in posts:
        activity.record_error(client, f"{path}: {reason}")
    if posts:  # one line per batch: a rejected key would otherwise log a line for every post
        more = f" and {len(posts) - 1} more posts" if len(posts) > 1 else ""
        log.error("gave up on %s%s: %s", display(posts[0][0]), more, reason)


def first_rejection(client: redis.Redis) -> bool:
    """Whether this is the first rejected key of the hour across the workers (who tells a person)."""
    return bool(client.set(KEY_REJECTED_KEY, "1", ex=KEY_REJECTED_TTL, nx=True))


def max_countdown(settings: Settings) -> int:
    """The longest countdown of a retry or the quota pause.

    It always ends well inside the broker's visibility timeout (no duplicate redelivery).
    """
    return min(3_600, settings.queue.visibility_timeout // 2)


def retry_countdown(settings: Settings, retries: int) -> int:
    """How long a fetch waits before its next try once the API client gave up: 1, 2, 4... minutes."""
    return min(60 << retries, max_countdown(settings))


def resume_countdown(settings: Settings, resume_at: float, now: float) -> int:
    """How long a paused fetch waits: until the quota resumes, a second at least, max_countdown at most."""
    return int(min(max(resume_at - now, 1.0), max_countdown(settings)))
