"""The simulated thumbnail host (i.ytimg.com): JPEGs with validators, 304s, 404s and faults."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Protocol

from worker.simulator.config import SimulatorConfig
from worker.simulator.truth import (
    JPEG_END,
    http_date,
    is_youtube_id,
    thumbnail_bytes,
    thumbnail_etag,
    thumbnail_last_modified,
)

FILE_SIZES = {
    "maxresdefault.jpg": "maxres",
    "sddefault.jpg": "sd",
    "hqdefault.jpg": "hq",
    "mqdefault.jpg": "mq",
    "default.jpg": "default",
}
HUGE_BYTES = 300_000
HTML_PAGE = b"<!DOCTYPE html><html><head><title>Error</title></head><body>Oops</body></html>"


class _Counters(Protocol):
    def add(self, name: str, amount: int = 1) -> None: ...


@dataclass(frozen=True)
class ThumbReply:
    """One response of the thumbnail host."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def serve_thumbnail(config: SimulatorConfig, path: str, request_headers: Message,
                    counters: _Counters) -> ThumbReply:
    """Answer `GET /vi/{id}/{size}default.jpg` the way the thumbnail host would."""
    pieces = path.split("/")
    if len(pieces) != 4:
        return ThumbReply(404, b"not found", {"Content-Type": "text/plain"})
    _, _, vid_id, name = pieces
    size = FILE_SIZES.get(name)
    if (size is None or not is_youtube_id(vid_id) or vid_id in config.deleted
            or size in config.thumb_missing_sizes):
        return ThumbReply(404, b"not found", {"Content-Type": "text/plain"})
    if config.thumb_fault is not None:
        return _fault(config, path, vid_id, size)
    etag = thumbnail_etag(vid_id, config.epoch, size)
    modified = thumbnail_last_modified(config.epoch)
    validators = {"ETag": etag, "Last-Modified": http_date(modified)}
    if _not_modified(request_headers, etag, modified):
        counters.add("thumb_304")
        return ThumbReply(304, b"", validators)
    body = thumbnail_bytes(vid_id, config.epoch, size)
    return ThumbReply(200, body, {"Content-Type": "image/jpeg", **validators})


def _not_modified(headers: Message, etag: str, modified: datetime) -> bool:
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        return etag in [tag.strip() for tag in if_none_match.split(",")] or if_none_match == "*"
    since = headers.get("If-Modified-Since")
    if since is None:
        return False
    try:
        return parsedate_to_datetime(since) >= modified
    except (TypeError, ValueError):
        return False


def _fault(config: SimulatorConfig, path: str, vid_id: str, size: str) -> ThumbReply:
    jpeg = thumbnail_bytes(vid_id, config.epoch, size)
    kind = config.thumb_fault
    if kind == "html":
        return ThumbReply(200, HTML_PAGE, {"Content-Type": "text/html; charset=utf-8"})
    if kind == "huge":
        padding = b"\x00" * HUGE_BYTES
        return ThumbReply(200, jpeg[:-2] + padding + JPEG_END, {"Content-Type": "image/jpeg"})
    if kind == "truncated":
        return ThumbReply(200, jpeg[: len(jpeg) // 2], {"Content-Type": "image/jpeg"})
    if kind == "redirect":
        return ThumbReply(302, b"", {"Location": f"http://elsewhere.invalid{path}"})
    if kind == "redirect_loop":
        return ThumbReply(302, b"", {"Location": path})
    if kind == "503":
        return ThumbReply(503, b"busy", {"Content-Type": "text/plain",
                                          "Retry-After": f"{config.retry_after:g}"})
    raise ValueError(f"unknown thumb_fault {kind!r}")
