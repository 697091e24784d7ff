"""What a YouTube video id looks like; nothing else may reach a URL or a file name."""

from __future__ import annotations

import re

VIDEO_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{11}")


def is_video_id(value: object) -> bool:
    """True when `value` is an 11-character YouTube id made of [A-Za-z0-9_-]."""
    return isinstance(value, str) and VIDEO_ID_PATTERN.fullmatch(value) is not None
