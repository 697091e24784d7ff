"""What summary.json needs of one post, small enough to keep in the state DB by the file's identity.

A run records the facts of every post it reads, and of every post it writes (derived from the
post it read and the changes it applied), so the summary after it parses no post again; a
summary of posts no run read (a Celery scan, `--stale`) parses only those whose identity changed.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any

from worker.frontmatter.editor import HISTORY_KEY
from worker.refresh.changes import STATUS, UNAVAILABLE, plan_changes
from worker.settings import Settings
from worker.site import history
from worker.site.posts import FileIdentity, Post, discover, identity_of, video_posts
from worker.site.state import CHUNK, SiteState

VIEWS_API_PATH = "statistics.viewCount"
Point = tuple[str, str | None]  # (observed at, views as text)


def views_key(settings: Settings) -> str:
    """The front-matter key that holds the view count."""
    keys = [key for key, api_path in settings.site.fields.items() if api_path == VIEWS_API_PATH]
    return keys[0] if keys else "viewcount"


def facts_of(vid_id: str, mapping: Mapping[Any, Any], key: str) -> dict[str, Any]:
    """The facts of a video post whose front matter is `mapping` (views under `key`), JSON-ready.

    `points` are the post's own observations of its views (its history entries, then its
    current value); the video's CSV is read when the summary is built, as it may change alone.
    """
    facts: dict[str, Any] = {"key": key, "vid_id": vid_id, "unavailable": mapping.get(STATUS) == UNAVAILABLE}
    if facts["unavailable"]:
        return facts
    views = history.as_number(mapping.get(key))
    facts.update(views=views)
    if views is None:
        return facts
    points: list[Point] = []
    for entry in _entries(mapping):
        at = history.as_text(entry.get("at")) or ""
        points += [(at, _text(value)) for name, value in entry.items() if name != "at" and str(name) == key]
    if key in mapping:
        points.append((history.observed_at(mapping) or "", history.as_text(mapping.get(key))))
    facts.update(title=history.as_text(mapping.get("title")) or "",
                 refreshed_at=history.as_text(mapping.get(history.REFRESHED_AT)), points=points)
    return facts


def encode(facts: Mapping[str, Any] | None, id_key: str | None) -> str:
    """Facts as the text the state DB keeps, with the `id_key` they were read with (facts None:
    a file with no place in the summary, as that id key sees it)."""
    kept = {"id_key": id_key or "", **({"video": False} if facts is None else facts)}
    return json.dumps(kept, ensure_ascii=False, separators=(",", ":"))


def decode(text: str | None, key: str, id_key: str | None) -> dict[str, Any] | None:
    """Facts kept by `encode` (None: no place in the summary); KeyError when they were taken with
    another views key or id key, or by a version that kept no id key (take them again)."""
    if text is None:
        raise KeyError(key)
    facts: dict[str, Any] = json.loads(text)
    if facts.get("id_key") != (id_key or ""):
        raise KeyError(id_key)
    if facts.get("video") is False:
        return None
    if facts.get("key") != key:
        raise KeyError(key)
    return facts


def written_facts(post: Post, video: Mapping[str, str] | None, absences: int, thumbnail: str | None,
                  settings: Settings, stamp: str) -> dict[str, Any]:
    """The facts of `post` once PostWriter has written it (the same plan, the same history entry).

    The editor checks that a written post reads back as its old values with the changes set
    and the entry appended (editor._check_reads_back). Entries it moves to the CSV stay here
    too, which adds no point the CSV lacks.
    """
    changes = plan_changes(post.mapping, video, absences, settings, thumbnail)
    if not changes:
        return facts_of(post.vid_id, post.mapping, views_key(settings))  # PostWriter wrote nothing
    entry = history.entry_for(post.mapping, changes)
    changes[history.REFRESHED_AT] = stamp
    after = dict(post.mapping)
    for name, value in changes.items():
        if value is None:
            after.pop(name, None)
        else:
            after[name] = value
    if entry is not None and settings.site.history_mode == "frontmatter":
        after[HISTORY_KEY] = [*_entries(post.mapping), entry]
    return facts_of(post.vid_id, after, views_key(settings))


def site_facts(site: Path, settings: Settings, state: SiteState) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, facts) of every video post of the site, from the state DB where the file is unchanged.

    Paths go CHUNK at a time: one query for what is kept, one stat per post, and a read only
    for the files that changed since (whose facts are then kept). Bad posts are left out. Once
    every path was walked, the facts of posts no longer there are forgotten (the table stays
    the size of the site).
    """
    paths = discover(site, settings.site.posts_globs)
    state.start_facts_walk()
    while chunk := list(islice(paths, CHUNK)):
        state.walked(chunk)
        found = _chunk_facts(site, settings, state, chunk)
        yield from ((rel, facts) for rel, facts in found.items() if facts is not None)
    state.end_facts_walk()


def _chunk_facts(site: Path, settings: Settings, state: SiteState, chunk: list[str]
                 ) -> dict[str, dict[str, Any] | None]:
    log = FactsLog(site, state, settings)
    kept = state.cached_facts(chunk)
    found: dict[str, dict[str, Any] | None] = {}
    for rel in chunk:
        if rel in kept and _identity(site / rel) == kept[rel][0]:
            with contextlib.suppress(KeyError):  # taken with another views key: read again
                found[rel] = decode(kept[rel][1], log.key, log.id_key)

    def heard(rel: str, identity: FileIdentity, post: Post | None) -> None:
        found[rel] = None if post is None else facts_of(post.vid_id, post.mapping, log.key)
        log.keep(rel, identity, found[rel])

    for _ in video_posts(site, [rel for rel in chunk if rel not in found], on_read=heard,
                         id_key=settings.site.id_key):
        pass  # each file read was heard
    log.flush()
    return found


def _identity(path: Path) -> FileIdentity | None:
    try:
        return identity_of(os.stat(path))
    except OSError:
        return None


class FactsLog:
    """Keeps the facts of the posts a run reads and writes in the state DB, CHUNK rows a transaction.

    A file that is not a video post is kept when read; a video post once its batch is done
    (as read, or as written), with the identity it was read with meanwhile in `pending`.
    """

    def __init__(self, site: Path, state: SiteState, settings: Settings) -> None:
        self.site = site
        self.state = state
        self.key = views_key(settings)
        self.id_key = settings.site.id_key
        self.rows: list[tuple[str, FileIdentity, str | None]] = []
        self.pending: dict[str, FileIdentity] = {}  # video posts read, their batch not done

    def read(self, rel: str, identity: FileIdentity, post: Post | None) -> None:
        """A file read (`post` None: not a video post, or a bad one)."""
        if post is None:
            self.keep(rel, identity, None)
        else:
            self.pending[rel] = identity

    def as_read(self, post: Post) -> None:
        """A video post left as it was read."""
        if (identity := self.pending.pop(post.path, None)) is not None:
            self.keep(post.path, identity, facts_of(post.vid_id, post.mapping, self.key))

    def written(self, post: Post, facts: dict[str, Any]) -> None:
        """A video post just written, whose facts are now `facts`."""
        self.pending.pop(post.path, None)
        try:
            identity = identity_of(os.stat(self.site / post.path))
        except OSError:
            return  # gone already: the summary finds what replaced it
        self.keep(post.path, identity, facts)

    def forget(self, post: Post) -> None:
        """A video post the run could not write: nothing is kept of it."""
        self.pending.pop(post.path, None)

    def flush(self) -> None:
        """Keep the rows not kept yet."""
        if self.rows:
            self.state.remember_facts(self.rows)
            self.rows = []

    def keep(self, rel: str, identity: FileIdentity, facts: dict[str, Any] | None) -> None:
        """Keep these facts of the file at `rel` while it has `identity`."""
        self.rows.append((rel, identity, encode(facts, self.id_key)))
        if len(self.rows) >= CHUNK:  # a commit per 50 rows was most of a run's SQLite time
            self.flush()


def _entries(mapping: Mapping[Any, Any]) -> list[Mapping[Any, Any]]:
    # A hand-made `history:` that is not a list of mappings holds no observation.
    entries = mapping.get(HISTORY_KEY)
    return [e for e in entries if isinstance(e, Mapping)] if isinstance(entries, list) else []


def _text(value: Any) -> str:
    text = history.as_text(value)
    return "" if text is None else text
