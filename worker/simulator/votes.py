"""The simulator's Return YouTube Dislike endpoint: `GET /votes?videoId=ID`, with its rate limit.

Dislikes derive from the id's hash like every other simulated value, so tests compute them with
`expected_dislikes`. More than `votes_per_minute` requests in `votes_window` seconds get a 429
with a Retry-After saying when the oldest one leaves the window.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from typing import Any, Protocol

from worker.simulator.truth import is_youtube_id, video_truth


class VotesConfig(Protocol):
    """The simulator settings this endpoint reads."""

    @property
    def epoch(self) -> int: ...
    @property
    def deleted(self) -> frozenset[str]: ...
    @property
    def votes_deleted(self) -> frozenset[str]: ...
    @property
    def votes_per_minute(self) -> int | None: ...
    @property
    def votes_window(self) -> float: ...


class VoteWindow:
    """The times of recent /votes requests, for the simulated rate limit."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self, limit: int | None, window: float, now: float | None = None) -> float | None:
        """None if the request may pass; else the seconds until it would."""
        moment = time.monotonic() if now is None else now
        with self._lock:
            while self._times and self._times[0] <= moment - window:
                self._times.popleft()
            if limit is not None and len(self._times) >= limit:
                return self._times[0] + window - moment
            self._times.append(moment)
            return None


def expected_dislikes(vid_id: str, epoch: int = 0) -> int:
    """The dislikes the simulator reports for `vid_id`."""
    views = int(video_truth(vid_id, epoch)["statistics"]["viewCount"])
    h = hashlib.blake2b(f"votes|{vid_id}".encode(), digest_size=4).digest()
    return views // (150 + h[0] * 4) + epoch


def votes_reply(config: VotesConfig, window: VoteWindow, vid_id: str
                ) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, JSON body and headers of one /votes request."""
    wait = window.admit(config.votes_per_minute, config.votes_window)
    if wait is not None:
        return 429, {"message": "Too Many Requests"}, {"Retry-After": f"{max(wait, 0.01):.2f}"}
    if not is_youtube_id(vid_id):
        return 400, {"title": "One or more validation errors occurred.", "status": 400}, {}
    if vid_id in config.deleted:
        return 404, {"title": "Not Found", "status": 404}, {}
    stats = video_truth(vid_id, config.epoch)["statistics"]
    likes = int(stats.get("likeCount", "0"))
    dislikes = expected_dislikes(vid_id, config.epoch)
    body = {
        "id": vid_id,
        "dateCreated": "2021-11-20T00:00:00.000000Z",
        "likes": likes,
        "dislikes": dislikes,
        "rating": round(1 + 4 * likes / (likes + dislikes), 6) if likes + dislikes else 0,
        "viewCount": int(stats["viewCount"]),
        "deleted": vid_id in config.votes_deleted,
    }
    return 200, body, {}
