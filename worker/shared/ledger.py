"""The Celery path's record of the files workers wrote, kept in Redis until a publish commits them.

The write and thumbnail tasks add `path -> kind` to the hash `postrefresh:written` after a
successful write. A publish moves that hash into `postrefresh:publishing` in one atomic step
(so a write landing meanwhile goes to the next publish, never lost), commits, and only then
drops it; a refused or failed publish leaves it for the next one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from worker.errors import PushFailed
from worker.shared.keys import PUBLISH_LOCK_KEY, PUBLISH_LOCK_TTL, PUBLISHING_KEY, WRITTEN_KEY
from worker.site.git import Published, publish

# Merge `written` into `publishing` and delete it, atomically (Redis runs a script alone).
_MOVE = """
local items = redis.call('HGETALL', KEYS[1])
for i = 1, #items, 2 do redis.call('HSET', KEYS[2], items[i], items[i + 1]) end
redis.call('DEL', KEYS[1])
return #items / 2
"""


def record(client: Any, files: Mapping[str, str]) -> None:
    """Note files a worker wrote (site-relative path -> kind) for the next publish."""
    if files:
        # Paths are bytes in Redis: a file name that is not UTF-8 survives the round trip.
        client.hset(WRITTEN_KEY, mapping={os.fsencode(path): kind for path, kind in files.items()})


def publish_recorded(client: Any, site: Path, *, push: bool) -> Published | None:
    """Commit every recorded file git sees changed; None when another publish is running."""
    if not client.set(PUBLISH_LOCK_KEY, os.getpid(), nx=True, ex=PUBLISH_LOCK_TTL):
        return None
    try:
        client.eval(_MOVE, 2, WRITTEN_KEY, PUBLISHING_KEY)
        recorded = {os.fsdecode(path): kind.decode() for path, kind in client.hgetall(PUBLISHING_KEY).items()}
        try:
            done = publish(site, recorded, push=push)
        except PushFailed:
            client.delete(PUBLISHING_KEY)  # committed: the next push sends it
            raise
        client.delete(PUBLISHING_KEY)
        return done
    finally:
        client.delete(PUBLISH_LOCK_KEY)
