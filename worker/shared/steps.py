"""The steps the Celery tasks call, as plain functions of one worker process's resources.

A task decodes its arguments, makes one call here and maps the errors to retries. Sending a
task is passed in (the Celery layer sends it), as for `enqueue_posts`: this module knows Redis,
the fetcher and the site only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import httpx
import redis

from worker.refresh.write import Outcome
from worker.settings import Settings
from worker.shared import activity, ledger
from worker.shared.counters import add_counts
from worker.shared.dislikes import dislike_fields
from worker.shared.enqueue import release
from worker.shared.fetcher import SharedFetcher
from worker.shared.keys import THUMBNAIL_TTL, queued_key, queued_ttl, thumbnail_key
from worker.site import git

SendWrite = Callable[[str, str, dict[str, str] | None, float], object]
SendThumbnail = Callable[[str], object]


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


async def fetch_for_post(rt: Resources, path: str, vid_id: str, *, send_write: SendWrite,
                         send_thumbnail: SendThumbnail) -> None:
    """Get the video's answer (usually from the shared cache), queue the post's write and,
    once per video, its thumbnail; raises QuotaPaused, ApiUnreachable or ApiKeyRejected."""
    s = rt.settings
    # Renewed by every run, so that the key of a post whose message was lost expires (see QUEUED_TTL).
    rt.redis.expire(queued_key(path), queued_ttl(s.queue.visibility_timeout))
    answer = await rt.fetcher.fetch(vid_id)
    fields = answer.fields
    if s.dislikes.enabled and fields is not None:
        fields = {**fields, **await dislike_fields(rt.http, rt.redis, s, vid_id)}
    send_write(path, vid_id, fields, answer.fetched_at)
    # Claimed only once the write is queued: a task killed before then claims it when run again.
    if s.thumbnails.enabled and answer.fields is not None and rt.redis.set(
            thumbnail_key(vid_id), "1", nx=True, ex=THUMBNAIL_TTL):
        send_thumbnail(vid_id)


def record_write(rt: Resources, path: str, vid_id: str, outcome: Outcome) -> None:
    """The bookkeeping after a post's write: no longer queued, its outcome, its files to publish."""
    release(rt.redis, path)
    activity.record_outcome(rt.redis, outcome)
    add_counts(rt.redis, {f"posts:{outcome.status}": 1})
    if rt.settings.publish.commit and outcome.status in ("refreshed", "unavailable"):
        ledger.record(rt.redis, git.post_files(rt.site, path, vid_id, outcome.status))
