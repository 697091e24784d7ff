"""Milestones: the round number of views (10k, 100k, 1M, 10M …) a video passed lately.

"Just passed a million" is true for `milestone_days` after the first observation past the
million, whatever the number of runs in between: the time comes from the video's history,
not from the previous run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

FIRST_MILESTONE = 10_000


def round_numbers(low: int, high: int) -> Iterator[int]:
    """The milestones in (low, high]: 10k, 100k, 1M … ."""
    milestone = FIRST_MILESTONE
    while milestone <= high:
        if milestone > low:
            yield milestone
        milestone *= 10


def latest_milestone(points: Iterable[tuple[float, int]], since: float, max_gap: float
                     ) -> tuple[int, float] | None:
    """The highest milestone the views passed at or after `since`, and when first seen past it.

    `points` are (epoch seconds, views) observations in any order; a milestone is passed
    between two observations in a row and first seen at the later one. A passing is known only
    when the earlier observation is at most `max_gap` older: a first refresh of a post written
    years ago does not say when its video passed a million, so it is no milestone.
    """
    found: tuple[int, float] | None = None
    previous: tuple[float, int] | None = None
    for moment, views in sorted(points):
        if previous is not None and moment >= since and moment - previous[0] <= max_gap:
            for milestone in round_numbers(previous[1], views):
                found = (milestone, moment)
        highest = views if previous is None else max(previous[1], views)  # a dip is no new passing
        previous = (moment, highest)
    return found
