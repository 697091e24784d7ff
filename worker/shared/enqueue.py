"""Queueing posts for the distributed refresher: dedupe in Redis, mark ids pending, publish.

Publishing is passed in (the Celery layer sends the task); this module knows Redis only.
A post already queued or running has a `queued` key (SET NX with a TTL), so enqueueing it
again adds nothing; the write task deletes the key when the post is done.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis

from worker.shared.fetcher import mark_pending
from worker.shared.keys import queued_key

CHUNK = 500
Publish = Callable[[str, str], None]


@dataclass
class EnqueueReport:
    """What an enqueue did."""

    queued: int = 0
    already_queued: int = 0


def enqueue_posts(client: redis.Redis, posts: Iterable[tuple[str, str]], publish: Publish, *, ttl: int,
                  dry_run: bool = False) -> EnqueueReport:
    """Queue one task per (path, vid_id) not already queued; streams, CHUNK per Redis round trip."""
    report = EnqueueReport()
    iterator = iter(posts)
    while chunk := list(itertools.islice(iterator, CHUNK)):
        fresh = _claim(client, [path for path, _ in chunk], ttl, dry_run)
        new = [(path, vid) for (path, vid), ok in zip(chunk, fresh, strict=True) if ok]
        report.already_queued += len(chunk) - len(new)
        report.queued += len(new)
        if dry_run:
            continue
        mark_pending(client, {vid for _, vid in new}, time.time())
        for index, (path, vid) in enumerate(new):
            try:
                publish(path, vid)
            except BaseException:
                for unsent, _ in new[index:]:
                    release(client, unsent)
                raise
    return report


def _claim(client: redis.Redis, paths: list[str], ttl: int, dry_run: bool) -> list[bool]:
    pipe = client.pipeline(transaction=False)
    for path in paths:
        if dry_run:
            pipe.exists(queued_key(path))
        else:
            pipe.set(queued_key(path), "1", nx=True, ex=ttl)
    results = pipe.execute()
    return [not r for r in results] if dry_run else [bool(r) for r in results]


def release(client: redis.Redis, path: str) -> None:
    """Forget that a post is queued (its task finished or gave up)."""
    client.delete(queued_key(path))
