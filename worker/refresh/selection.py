"""Choosing the posts a run or an enqueue works on: read each candidate, skip the fresh ones."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from worker.site.posts import Post, PostCounts, video_posts
from worker.site.state import SiteState


@dataclass
class SelectionCounts(PostCounts):
    """What selection saw: video posts, other posts, bad posts, and posts skipped as fresh."""

    fresh: int = 0


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
        for post in video_posts(self.site, candidates, on_bad=self.on_bad, counts=self.counts):
            if self.stale_before is not None:
                checked = self.state.checked_at(post.path)
                if checked is not None and checked > self.stale_before:
                    self.counts.fresh += 1
                    continue
            yield post
