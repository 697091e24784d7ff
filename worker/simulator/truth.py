"""What the simulated YouTube knows: deterministic video data and thumbnail bytes per id and epoch.

Every value derives from a BLAKE2 hash of the id, so tests can compute what the simulator
will answer. Hidden likes: a video has no `likeCount` when the hash's first byte is 0..4
(5 of 256 values, about 2% of ids); comments off: no `commentCount` for about 2% of ids, by a
second hash. About 1% more ids have each count at even epochs and not at odd ones, so an owner
hiding a count and showing it again can be tested.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

HIDDEN_LIKES_BELOW = 5
# What YouTube takes for a video id. The oracle's own rule, not worker.video_id's: a bug in the
# pipeline's id check must not be copied into the answers that check it.
_YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
TOGGLING_BELOW = 8  # ids whose first byte is 5..7 hide the count at odd epochs only
# Thumbnails of epoch N were "last modified" N days after this instant.
THUMB_EPOCH_ZERO = datetime(2024, 1, 1, tzinfo=UTC)

# A complete 1x1 baseline JPEG; a COM segment makes the bytes differ per id, epoch and size.
_JPEG_HEAD = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000"
    "ffdb004300080606070605080707070909080a0c140d0c0b0b0c1912130f141d1a1f1e1d1a1c1c20242e27"
    "20222c231c1c2837292c30313434341f27393d38323c2e333432"
    "ffc0000b080001000101011100"
    "ffc4001f0000010501010101010100000000000000000102030405060708090a0b"
    "ffc400b5100002010303020403050504040000017d01020300041105122131410613516107227114328191a1"
    "082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a5354"
    "55565758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6"
    "a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3"
    "f4f5f6f7f8f9fa"
)
# Scan: DC category 0 ("00"), then EOB ("1010"), padded with ones.
_JPEG_SCAN = bytes.fromhex("ffda0008010100003f00") + bytes([0b00101011])
JPEG_END = b"\xff\xd9"



def is_youtube_id(value: str) -> bool:
    """Whether YouTube would take `value` for a video id (11 characters of [A-Za-z0-9_-])."""
    return _YOUTUBE_ID.fullmatch(value) is not None

def _digest(*parts: object) -> bytes:
    return hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=16).digest()


def _number(digest: bytes, start: int, width: int = 4) -> int:
    return int.from_bytes(digest[start : start + width], "big")


def has_hidden_likes(vid_id: str, epoch: int = 0) -> bool:
    """True when the statistics of `vid_id` carry no likeCount at `epoch` (hidden likes)."""
    return _hidden(_digest(vid_id)[0], epoch)


def has_comments_off(vid_id: str, epoch: int = 0) -> bool:
    """True when the statistics of `vid_id` carry no commentCount at `epoch` (comments off)."""
    return _hidden(_digest(vid_id, "comments")[0], epoch)


def _hidden(byte: int, epoch: int) -> bool:
    return byte < HIDDEN_LIKES_BELOW or (byte < TOGGLING_BELOW and epoch % 2 == 1)


def video_truth(vid_id: str, epoch: int) -> dict[str, dict[str, Any]]:
    """The snippet, contentDetails and statistics parts the simulator serves for `vid_id`."""
    h = _digest(vid_id)
    base_views = _number(h, 1) % 5_000_000
    views = base_views + epoch * (1 + _number(h, 5, 2) % 1000)
    published = datetime(2015, 1, 1, tzinfo=UTC) + timedelta(seconds=_number(h, 7) % 300_000_000)
    seconds = _seconds(h)
    statistics = {
        "viewCount": str(views),
        "likeCount": str(views // (20 + h[13] % 30)),
        "favoriteCount": "0",
        "commentCount": str(views // (200 + h[14] % 300) + epoch),
    }
    if has_hidden_likes(vid_id, epoch):
        del statistics["likeCount"]
    if has_comments_off(vid_id, epoch):
        del statistics["commentCount"]
    return {
        "snippet": {
            "publishedAt": published.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "channelId": "UC" + h.hex()[:22],
            "title": f"Simulated video {vid_id}",
            "channelTitle": f"Channel {h.hex()[:6]}",
            "thumbnails": thumbnails_of(vid_id, _missing_sizes(h)),
        },
        "contentDetails": {"duration": f"PT{seconds // 60}M{seconds % 60}S"},
        "statistics": statistics,
    }


def _seconds(digest: bytes) -> int:
    return 30 + _number(digest, 11, 2) % 3600


def _missing_sizes(digest: bytes) -> int:
    return digest[15] % 3


def thumbnails_of(vid_id: str, missing: int) -> dict[str, dict[str, Any]]:
    """The snippet's thumbnails as the real API lists them; the `missing` largest are left out."""
    sizes = [("default", "default", 120, 90), ("medium", "mqdefault", 320, 180),
             ("high", "hqdefault", 480, 360), ("standard", "sddefault", 640, 480),
             ("maxres", "maxresdefault", 1280, 720)]
    return {name: {"url": f"https://i.ytimg.com/vi/{vid_id}/{file}.jpg", "width": width,
                   "height": height} for name, file, width, height in sizes[:len(sizes) - missing]}


def expected_fields(vid_id: str, epoch: int) -> dict[str, str]:
    """The flat `part.key -> value` mapping a correct client returns for `vid_id`."""
    flat: dict[str, str] = {}
    for part, values in video_truth(vid_id, epoch).items():
        flat.update(_flat(values, part))
    # The computed fields from what the simulator knows, not from the client's code that derives
    # them (api/fields.py), so a bug there shows up as a difference.
    h = _digest(vid_id)
    largest = list(thumbnails_of(vid_id, _missing_sizes(h)).values())[-1]
    return {**flat, "contentDetails.durationSeconds": str(_seconds(h)),
            "snippet.bestThumbnailUrl": largest["url"]}


def _flat(values: dict[str, Any], prefix: str) -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}.{key}"))
        elif isinstance(value, str):
            flat[f"{prefix}.{key}"] = value
    return flat


def video_resource(vid_id: str, epoch: int, parts: frozenset[str]) -> dict[str, Any]:
    """One `youtube#video` item, holding only the requested parts."""
    truth = video_truth(vid_id, epoch)
    item: dict[str, Any] = {
        "kind": "youtube#video",
        "etag": _digest("etag", vid_id, epoch).hex(),
        "id": vid_id,
    }
    item.update({part: values for part, values in truth.items() if part in parts})
    return item


def thumbnail_bytes(vid_id: str, epoch: int, size: str) -> bytes:
    """A small valid JPEG, different for every id, epoch and size name."""
    comment = f"postrefresh simulator {vid_id} {epoch} {size}".encode()
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return _JPEG_HEAD[:20] + segment + _JPEG_HEAD[20:] + _JPEG_SCAN + JPEG_END


def thumbnail_etag(vid_id: str, epoch: int, size: str) -> str:
    """The quoted ETag of one thumbnail."""
    return '"' + _digest("thumb", vid_id, epoch, size).hex() + '"'


def thumbnail_last_modified(epoch: int) -> datetime:
    """When the thumbnails of `epoch` were last modified."""
    return THUMB_EPOCH_ZERO + timedelta(days=epoch)


def http_date(moment: datetime) -> str:
    """An RFC 9110 HTTP date."""
    return format_datetime(moment, usegmt=True)


_ERRORS: dict[str, tuple[str, str]] = {
    "forbidden": ("global", "The request is missing a valid API key."),
    "keyInvalid": ("usageLimits", "API key not valid. Please pass a valid API key."),
    "quotaExceeded": (
        "youtube.quota",
        "The request cannot be completed because you have exceeded your "
        '<a href="/youtube/v3/getting-started#quota">quota</a>.',
    ),
    "rateLimitExceeded": ("usageLimits", "The request cannot be completed: too many requests."),
    "backendError": ("global", "Backend Error"),
    "missingRequiredParameter": ("youtube.parameter", "No filter selected or part missing."),
    "invalidFilters": ("youtube.parameter", "The request specifies an invalid filter parameter."),
    "unsupportedParameter": ("youtube.parameter",
                             "The maxResults parameter is not supported with the id filter."),
    "invalidFields": ("global", "Invalid field selection."),
    "RATE_LIMIT_EXCEEDED": ("googleapis.com", "Quota exceeded for quota metric 'Queries' per minute."),
}


def api_error(status: int, reason: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    """A Google-style error reply: status, `{"error": {...}}` body and no extra headers."""
    domain, message = _ERRORS[reason]
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
        }
    }
    return status, body, {}


def api_error_in_details(status: int, reason: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    """A Google error in the newer envelope: the reason only in `error.details[]` (ErrorInfo)."""
    _, body, headers = api_error(status, reason)
    error = body["error"]
    del error["errors"]
    error["status"] = "RESOURCE_EXHAUSTED" if status == 429 else "PERMISSION_DENIED"
    error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                         "domain": "youtube.googleapis.com"}]
    return status, body, headers
