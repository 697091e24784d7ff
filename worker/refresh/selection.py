"""Choosing the posts a run or an enqueue works on: read each candidate, skip the fresh ones."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from worker.errors import PostFormatError
from worker.site.posts import Post, read_post
from worker.site.state import SiteState


@dataclass
class SelectionCounts:
    """What selection saw: video posts, other posts, posts skipped as fresh, bad posts."""

    seen: int = 0
    not_video: int = 0
    fresh: int = 0
    bad: int = 0


@dataclass
class Selection:
    """Streams the video posts among `candidates` that are due, counting the rest."""

    site: Path
    state: SiteState
    stale_before: float | None = None
    on_bad: Callable[[str, str], None] = lambda path, reason: None
    counts: SelectionCounts = field(default_factory=SelectionCounts)

    def posts(self, candidates: Iterable[str]) -> Iterator[Post]:
        """Yield each readable video post not checked since `stale_before`."""
        for rel in candidates:
            try:
                post = read_post(self.site, rel)
            except PostFormatError as exc:
                self.counts.bad += 1
                self.on_bad(rel, str(exc))
                continue
            if post is None:
                self.counts.not_video += 1
                continue
            self.counts.seen += 1
            if self.stale_before is not None:
                checked = self.state.checked_at(rel)
                if checked is not None and checked > self.stale_before:
                    self.counts.fresh += 1
                    continue
            yield post
