"""The Celery writer's step: apply many posts' API answers in one go (two state-DB transactions).

Each answer is what one fetch produced for one post; the batch shares one stamp, one count of
absences, one durable write batch (PostWriter.write_batch) and one record of checked posts, as a
`run` batch does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from worker.errors import PostFormatError
from worker.refresh.thumbnails import thumbnail_path, thumbnail_url
from worker.refresh.write import Outcome, PostWriter, WriteRequest
from worker.settings import Settings
from worker.site.paths import resolve_in_site
from worker.site.state import SiteState
from worker.times import utc_stamp
from worker.video_id import is_video_id


@dataclass(frozen=True)
class Answer:
    """The API's answer for one post: its video's fields (None: not returned) and when it came."""

    path: str
    vid_id: str
    video: Mapping[str, str] | None
    fetched_at: float


Accepted = tuple[int, Answer, Path]  # an answer's place in its batch, and its post's real path


async def apply_answers(site: Path, state: SiteState, answers: Sequence[Answer],
                        settings: Settings) -> list[Outcome]:
    """Refuse paths outside the site and bad ids, count absences, write the posts; one outcome each.

    The files are written in a thread, so the caller's loop goes on (the batch's thumbnails);
    the state database is used from the loop's thread only.
    """
    outcomes: dict[int, Outcome] = {}
    accepted: list[Accepted] = []
    for index, answer in enumerate(answers):
        try:
            accepted.append((index, answer, _checked(site, answer)))
        except PostFormatError as exc:
            outcomes[index] = Outcome(answer.path, answer.vid_id if is_video_id(answer.vid_id) else None,
                                      "bad", f"refused: {exc}")
    absences = _observe(state, [answer for _, answer, _ in accepted])
    now = time.time()
    writer = PostWriter(site, settings, utc_stamp(now))
    outcomes.update(await asyncio.to_thread(_write_posts, writer, accepted, absences))
    done = [outcomes[index] for index in range(len(answers))]
    checked = [(o.path, o.vid_id or "") for o in done if o.status not in ("bad", "gone")]
    if checked:
        state.mark_checked(checked, now)
    return done


def _write_posts(writer: PostWriter, accepted: list[Accepted],
                 absences: Mapping[str, int]) -> dict[int, Outcome]:
    """Write the accepted posts as one durable batch (PostWriter.write_batch)."""
    requests = [WriteRequest(answer.path, answer.vid_id, answer.video, absences[answer.vid_id],
                             thumbnail=_local_image(writer.site, writer.settings, answer.vid_id))
                for _, answer, _ in accepted]
    outcomes = writer.write_batch(requests, [path for _, _, path in accepted])
    return {index: outcome for (index, _, _), outcome in zip(accepted, outcomes, strict=True)}


def _checked(site: Path, answer: Answer) -> Path:
    """The post's real path; PostFormatError if the path or the id may not be written."""
    path = resolve_in_site(site, answer.path)
    if not is_video_id(answer.vid_id):
        raise PostFormatError("the task's vid_id is not a YouTube id")
    return path


def _observe(state: SiteState, answers: Sequence[Answer]) -> dict[str, int]:
    """Absences per id, one transaction per distinct answer time (a batch usually has one)."""
    by_time: dict[float, dict[str, bool]] = {}
    for answer in answers:
        by_time.setdefault(answer.fetched_at, {})[answer.vid_id] = answer.video is not None
    absences: dict[str, int] = {}
    for fetched_at, present in sorted(by_time.items()):
        absences.update(state.observe(present.items(), fetched_at))
    return absences


def _local_image(site: Path, settings: Settings, vid_id: str) -> str | None:
    """The stored thumbnail's URL for the opt-in `image` rewrite, once the thumbnail is there."""
    if settings.thumbnails.rewrite_image and thumbnail_path(site, settings, vid_id).exists():
        return thumbnail_url(settings, vid_id)
    return None
