"""The steps the Celery tasks call, as plain functions of one worker process's resources.

A task decodes its arguments, makes one call here and maps the errors to retries. Sending a
task is passed in (the Celery layer sends it), as for `enqueue_posts`: this module knows Redis,
the fetcher and the site only.
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

from worker.errors import ThumbnailError
from worker.refresh.apply import Answer, apply_answers
from worker.refresh.thumbnails import update_thumbnail
from worker.refresh.write import Outcome
from worker.settings import Settings
from worker.shared import activity, ledger
from worker.shared.counters import add_counts
from worker.shared.dislikes import dislike_fields
from worker.shared.enqueue import PostRef, release
from worker.shared.fetcher import SharedFetcher
from worker.shared.keys import THUMBNAIL_TTL, queued_key, queued_ttl, thumbnail_key
from worker.site import git
from worker.site.paths import display, thumbnail_file
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
    # Renewed by every run, so that the key of a post whose message was lost expires (see QUEUED_TTL).
    ttl = queued_ttl(s.queue.visibility_timeout)
    renew = rt.redis.pipeline(transaction=False)
    for path, _ in posts:
        renew.expire(queued_key(path), ttl)
    renew.execute()
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
                log.warning("bad post %s: %s", outcome.path, outcome.reason)
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
    slots = asyncio.Semaphore(s.thumbnails.concurrency)

    async def one(vid_id: str) -> str:
        if not is_video_id(vid_id):
            return "refused"
        async with slots:
            try:
                result = await update_thumbnail(rt.http, rt.state, rt.site, vid_id, s)
            except (ThumbnailError, OSError) as exc:
                activity.record_error(rt.redis, f"thumbnail {vid_id}: {exc}")
                return "failed"
        add_counts(rt.redis, {"thumbnail_bytes": result.bytes_written})
        if s.publish.commit and result.status == "stored":
            ledger.record(rt.redis, {thumbnail_file(s.thumbnails.dir, vid_id): git.THUMBNAIL})
        return result.status

    return list(await asyncio.gather(*(one(vid) for vid in vid_ids)))
