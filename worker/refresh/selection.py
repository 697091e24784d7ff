"""Choosing the posts a run or an enqueue works on: skip the fresh ones unread, read the rest."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from worker.site.posts import Post, PostCounts, ReadHook, video_posts
from worker.site.state import CHUNK, SiteState


@dataclass
class SelectionCounts(PostCounts):
    """What selection saw: video posts, other posts, bad posts, and posts skipped as fresh."""

    fresh: int = 0


@dataclass
class Selection:
    """Streams the video posts among `candidates` that are due, counting the rest.

    With `stale_before`, the check times of CHUNK candidates are asked in one query, and a
    post checked since then is skipped without being read (it was a video post when checked).
    `on_read` hears every file read (see video_posts).
    """

    site: Path
    state: SiteState
    stale_before: float | None = None
    on_bad: Callable[[str, str], None] = lambda path, reason: None
    counts: SelectionCounts = field(default_factory=SelectionCounts)
    on_read: ReadHook | None = None
    id_key: str | None = None  # the settings' id_key
    _due: Iterator[str] = field(init=False, repr=False, default_factory=lambda: iter(()))

    def posts(self, candidates: Iterable[str]) -> Iterator[Post]:
        """Yield each readable video post not checked since `stale_before`."""
        yield from video_posts(self.site, self._due_paths(iter(candidates)), on_bad=self.on_bad,
                               counts=self.counts, on_read=self.on_read, id_key=self.id_key)

    def not_taken(self, rest: Iterator[str]) -> int:
        """How many due paths are left, counting `rest` (the candidates the selection has not seen)."""
        return sum(1 for _ in self._due) + sum(1 for _ in rest)

    def _due_paths(self, candidates: Iterator[str]) -> Iterator[str]:
        if self.stale_before is None:
            yield from candidates
            return
        while chunk := list(islice(candidates, CHUNK)):
            checked = self.state.checked_times(chunk)
            due = [rel for rel in chunk if not checked.get(rel, self.stale_before) > self.stale_before]
            fresh = len(chunk) - len(due)
            self.counts.fresh += fresh
            self.counts.seen += fresh  # seen as video posts when they were checked
            self._due = iter(due)
            yield from self._due
