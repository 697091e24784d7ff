"""Thumbnails: conditional, size-capped, checked downloads written atomically, and a folder budget.

Validators remember the size they came from: a conditional request is sent only for that
size, so a video whose best size is "hq" keeps getting cheap 304s even when "maxres" is
tried (and 404s) first. No API key is ever sent to the thumbnail host.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx
import tenacity

from worker.api.http import endpoint, exchange, raise_if_transient
from worker.api.retry import retry_policy
from worker.errors import ThumbnailError, TransientApiError
from worker.site.files import write_atomic
from worker.video_id import is_video_id

log = logging.getLogger(__name__)

SIZE_FILES: Mapping[str, str] = {
    "maxres": "maxresdefault.jpg",
    "sd": "sddefault.jpg",
    "hq": "hqdefault.jpg",
    "mq": "mqdefault.jpg",
    "default": "default.jpg",
}


@dataclass(frozen=True)
class Validators:
    """A stored thumbnail's ETag and Last-Modified, and the size name they belong to."""

    etag: str | None
    last_modified: str | None
    size: str | None = None


@dataclass(frozen=True)
class ThumbnailResult:
    """What one refresh did: stored new bytes, found them unchanged, or found no thumbnail."""

    status: Literal["stored", "unchanged", "absent"]
    size: str | None
    validators: Validators | None
    bytes_written: int


@dataclass(frozen=True)
class _Fetched:
    status: Literal[200, 304, 404]
    data: bytes = b""
    validators: Validators | None = None


async def refresh_thumbnail(http: httpx.AsyncClient, *, base_url: str, vid_id: str,
                            sizes: Sequence[str], target: Path, previous: Validators | None,
                            max_bytes: int, attempts: int, max_wait: float,
                            sleep: Callable[[float], Awaitable[None]] | None = None,
                            ) -> ThumbnailResult:
    """Fetch the first available size into `target`; the old file stays unless all checks pass.

    Raises ThumbnailError when the host keeps failing or serves something that is not a
    complete JPEG, PNG or WebP within `max_bytes`; ValueError for a bad id or size name.
    """
    if not is_video_id(vid_id):
        raise ValueError(f"not a YouTube video id: {vid_id!r:.40}")
    unknown = [s for s in sizes if s not in SIZE_FILES]
    if unknown or not sizes:
        raise ValueError(f"thumbnail sizes must be among {', '.join(SIZE_FILES)}")
    for size in sizes:
        url = endpoint(base_url, f"vi/{vid_id}/{SIZE_FILES[size]}")
        conditional = previous if previous is not None and previous.size in (size, None) else None
        fetched = await _fetch_with_retries(http, url, vid_id, size, conditional, max_bytes,
                                            retry_policy(attempts=attempts, max_wait=max_wait,
                                                         sleep=sleep))
        if fetched.status == 404:
            continue
        if fetched.status == 304:
            if conditional is None:
                raise ThumbnailError(f"thumbnail {vid_id} ({size}): 304 to a plain request")
            return ThumbnailResult("unchanged", size, replace(conditional, size=size), 0)
        _check_image(fetched.data, vid_id, size)
        write_atomic(target, fetched.data)
        log.debug("thumbnail %s (%s) stored in %s, %d bytes", vid_id, size, target,
                  len(fetched.data))
        return ThumbnailResult("stored", size, fetched.validators, len(fetched.data))
    return ThumbnailResult("absent", None, None, 0)


async def _fetch_with_retries(http: httpx.AsyncClient, url: str, vid_id: str, size: str,
                              previous: Validators | None, max_bytes: int,
                              policy: tenacity.AsyncRetrying) -> _Fetched:
    try:
        async for attempt in policy:
            with attempt:
                return await _fetch(http, url, size, previous, max_bytes)
    except TransientApiError as exc:
        raise ThumbnailError(f"thumbnail {vid_id} ({size}) kept failing: {exc}; "
                             "the previous file is kept, the next run retries") from None
    raise AssertionError("the retry policy ended without an outcome")


async def _fetch(http: httpx.AsyncClient, url: str, size: str, previous: Validators | None,
                 max_bytes: int) -> _Fetched:
    headers = {}
    if previous is not None and previous.etag:
        headers["If-None-Match"] = previous.etag
    if previous is not None and previous.last_modified:
        headers["If-Modified-Since"] = previous.last_modified
    try:
        async with exchange(http, url, what="the thumbnail host", headers=headers,
                            stream=True) as response:
            return await _read(response, url, size, max_bytes)
    except TransientApiError as exc:
        log.warning("thumbnail %s: %s", url, exc)
        raise


async def _read(response: httpx.Response, url: str, size: str, max_bytes: int) -> _Fetched:
    status = response.status_code
    if status == 404:
        return _Fetched(404)
    if status == 304:
        return _Fetched(304)
    if 300 <= status < 400:
        host = urlsplit(response.headers.get("Location", "")).hostname or "the same host"
        raise ThumbnailError(f"{url} redirected to {host}: refused, redirects are not followed")
    raise_if_transient(response, f"HTTP {status}")
    if status != 200:
        raise ThumbnailError(f"{url} answered HTTP {status}; the previous file is kept")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ThumbnailError(f"{url} is {declared} bytes, over the {max_bytes}-byte cap")
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) > max_bytes:
            raise ThumbnailError(f"{url} is over the {max_bytes}-byte cap; download aborted")
    validators = Validators(response.headers.get("ETag"), response.headers.get("Last-Modified"),
                            size)
    return _Fetched(200, bytes(data), validators)


def image_kind(data: bytes) -> str | None:
    """"jpeg", "png" or "webp" when `data` is a complete image of that kind, else None."""
    if data.startswith(b"\xff\xd8\xff") and data.endswith(b"\xff\xd9"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82"):
        return "png"
    if (len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP"
            and struct.unpack("<I", data[4:8])[0] + 8 == len(data)):
        return "webp"
    return None


def _check_image(data: bytes, vid_id: str, size: str) -> None:
    if image_kind(data) is None:
        looks = "an HTML page" if data.lstrip()[:1] == b"<" else "not a complete image"
        raise ThumbnailError(f"thumbnail {vid_id} ({size}) is {looks}; the previous file is kept")


def thumbnail_folder_bytes(folder: Path) -> int:
    """Total bytes of the files under `folder` (0 when it does not exist)."""
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def thumbnail_budget_exceeded(folder: Path, budget_mb: int) -> bool:
    """True, with a warning, when `folder` holds more than `budget_mb` megabytes."""
    used = thumbnail_folder_bytes(folder)
    if used <= budget_mb * 1_000_000:
        return False
    log.warning("thumbnail folder %s holds %.1f MB, over its %d MB budget: raise "
                "thumbnail_budget_mb or prune old thumbnails", folder, used / 1e6, budget_mb)
    return True
