"""Time, said once: the UTC stamps postrefresh writes, the front matter's times as history keeps them,
the times it reads, and the quota's days.

YouTube's quota resets at midnight Pacific time, so units are counted per Pacific day; the
Return YouTube Dislike API publishes no reset time, so its budget counts UTC days.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

STAMP = "%Y-%m-%dT%H:%M:%SZ"
MINUTE = "%Y-%m-%d %H:%M UTC"  # a time shown to the operator
JEKYLL_TIME = "%Y-%m-%d %H:%M:%S %z"  # a post's `date: 2022-04-13 13:25:55 +0300`
QUOTA_ZONE = ZoneInfo("America/Los_Angeles")


def utc_stamp(moment: float | datetime) -> str:
    """`2026-11-24T21:49:14Z`, how postrefresh writes a time (epoch seconds or a UTC datetime)."""
    if isinstance(moment, datetime):
        return moment.strftime(STAMP)
    return datetime.fromtimestamp(moment, UTC).strftime(STAMP)


def time_text(moment: datetime) -> str:
    """A time read from front matter as history keeps it: ISO 8601, its zone (or none) as written."""
    return moment.isoformat()


def utc_minute(moment: float) -> str:
    """`2026-11-24 21:49 UTC`, a time as the operator's commands show it (epoch seconds)."""
    return datetime.fromtimestamp(moment, UTC).strftime(MINUTE)


def parse_time(value: object) -> float | None:
    """Epoch seconds of an ISO 8601 time or date ("Z", offsets), a Jekyll `date`, or a YAML date.

    A time without a zone is UTC; None when `value` is none of these.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and value.strip():
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            try:
                moment = datetime.strptime(value.strip(), JEKYLL_TIME)
            except ValueError:
                return None
    else:
        return None
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()


def quota_day(moment: float | datetime) -> str:
    """The YouTube quota day (a Pacific date) of `moment` (epoch seconds or an aware datetime)."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, QUOTA_ZONE)
    return moment.astimezone(QUOTA_ZONE).date().isoformat()


def next_quota_reset(now: float) -> float:
    """When the YouTube quota resets next: the coming midnight Pacific time."""
    local = datetime.fromtimestamp(now, QUOTA_ZONE)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), QUOTA_ZONE)
    return midnight.timestamp()


def utc_day(now: float) -> str:
    """The UTC date of `now`, the day the dislike API's daily budget counts in."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
