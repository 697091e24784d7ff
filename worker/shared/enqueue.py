"""Queueing posts for the distributed refresher: dedupe in Redis, mark ids pending, publish batches.

Publishing is passed in (the Celery layer sends the task); this module knows Redis only.
A post already queued or running has a `queued` key (SET NX with keys.queued_ttl), so enqueueing
it again adds nothing; each run of its fetch task renews the key and the write task deletes it
when the post is done. Posts travel in
batches of up to 50 videos (one videos.list call's worth), one message per batch.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import redis

from worker.api.youtube import MAX_IDS
from worker.shared.fetcher import mark_pending
from worker.shared.keys import queued_key, queued_ttl

CHUNK = 500
PostRef = tuple[str, str]  # (path relative to the site, vid_id)
Publish = Callable[[list[PostRef]], None]


@dataclass
class EnqueueReport:
    """What an enqueue did."""

    queued: int = 0
    already_queued: int = 0


def enqueue_posts(client: redis.Redis, posts: Iterable[PostRef], publish: Publish, *,
                  visibility_timeout: int, dry_run: bool = False) -> EnqueueReport:
    """Queue the posts not already queued, one message per batch; streams, CHUNK per Redis round trip."""
    report = EnqueueReport()
    ttl = queued_ttl(visibility_timeout)
    iterator = iter(posts)
    while chunk := list(itertools.islice(iterator, CHUNK)):
        fresh = _claim(client, [path for path, _ in chunk], ttl, dry_run)
        new = [(path, vid) for (path, vid), ok in zip(chunk, fresh, strict=True) if ok]
        report.already_queued += len(chunk) - len(new)
        report.queued += len(new)
        if dry_run:
            continue
        mark_pending(client, {vid for _, vid in new}, time.time())
        groups = list(batches(new, MAX_IDS))
        for index, group in enumerate(groups):
            try:
                publish(group)
            except BaseException:
                release(client, [path for unsent in groups[index:] for path, _ in unsent])
                raise
    return report


def batches(posts: Iterable[PostRef], videos: int) -> Iterator[list[PostRef]]:
    """Consecutive posts in groups of at most `videos` distinct video ids."""
    group: list[PostRef] = []
    ids: set[str] = set()
    for path, vid in posts:
        if vid not in ids and len(ids) == videos:
            yield group
            group, ids = [], set()
        group.append((path, vid))
        ids.add(vid)
    if group:
        yield group


def _claim(client: redis.Redis, paths: list[str], ttl: int, dry_run: bool) -> list[bool]:
    pipe = client.pipeline(transaction=False)
    for path in paths:
        if dry_run:
            pipe.exists(queued_key(path))
        else:
            pipe.set(queued_key(path), "1", nx=True, ex=ttl)
    results = pipe.execute()
    return [not r for r in results] if dry_run else [bool(r) for r in results]


def renew(client: redis.Redis, paths: Iterable[str], visibility_timeout: int) -> None:
    """Renew queued posts' keys (their fetch task runs), so that the key of a post whose message the
    transport lost expires and the next scan queues the post again."""
    ttl = queued_ttl(visibility_timeout)
    pipe = client.pipeline(transaction=False)
    for path in paths:
        pipe.expire(queued_key(path), ttl)
    pipe.execute()


def release(client: redis.Redis, paths: Iterable[str]) -> None:
    """Forget that posts are queued (their task finished or gave up)."""
    keys = [queued_key(path) for path in paths]
    if keys:
        client.delete(*keys)
