"""What postrefresh keeps in Redis, and for how long: every key and its lifetime, said here once.

    key (after "postrefresh:")  type    lives                                  what for
    queued:<hash of the path>   string  2 x visibility_timeout, renewed by     the post is queued or running
                                        each run of its fetch task             (enqueue's dedupe)
    pending                     zset    until a fetch task claims the id       ids waiting for a shared call
    stats:<vid_id>              string  stats_cache_ttl; "in-flight" for one   the video's last answer
                                        fetch window (in_flight_ttl) while
                                        it is fetched
    quota:<Pacific day>         string  3 days                                 units all workers spent
    paused-until                string  until the next Pacific midnight        fetching paused for the quota
    key-rejected                string  1 hour                                 a person was told the key is
                                                                               rejected (once an hour)
    thumbnail:<vid_id>          string  1 hour                                 its thumbnail refresh is queued
    outcomes:<Pacific day>      hash    3 days                                 write outcomes (`status`)
    errors                      list    the newest 50 lines                    last errors (`status`)
    metrics                     hash    no expiry: counters                    the workers' counters
    ryd:day:<UTC day>           string  2 days                                 dislike requests of the day
    ryd:minute:<minute number>  string  120 s                                  dislike requests of the minute
    ryd:value:<vid_id>          string  stats_cache_ttl                        one estimate ("-": none)
    ryd:counts:<UTC day>        hash    3 days                                 dislike outcomes (`status`)
    written                     hash    until a publish takes it               files the workers wrote
    publishing                  hash    while that publish commits             the files being published
    publish-lock                string  600 s                                  one publish at a time

Celery's Redis transport keeps its own: the queues `fetch`, `write` and `scan` (lists, QUEUES), `unacked`,
`unacked_index` and `unacked_mutex` (a message not acked comes back after visibility_timeout),
and `_kombu.binding.*`. Everything here can be rebuilt: Redis needs no persistence.
"""

from __future__ import annotations

import hashlib
import math
import os

from worker.settings import ApiSettings

PREFIX = "postrefresh"
DAY = 86_400

PENDING_KEY = f"{PREFIX}:pending"
PAUSED_KEY = f"{PREFIX}:paused-until"
KEY_REJECTED_KEY = f"{PREFIX}:key-rejected"
KEY_REJECTED_TTL = 3_600
ERRORS_KEY = f"{PREFIX}:errors"
KEEP_ERRORS = 50
METRICS_KEY = f"{PREFIX}:metrics"
WRITTEN_KEY = f"{PREFIX}:written"
PUBLISHING_KEY = f"{PREFIX}:publishing"
PUBLISH_LOCK_KEY = f"{PREFIX}:publish-lock"
PUBLISH_LOCK_TTL = 600
QUOTA_TTL = 3 * DAY
OUTCOMES_TTL = 3 * DAY
THUMBNAIL_TTL = 3_600
RYD_DAY_TTL = 2 * DAY
RYD_MINUTE_TTL = 120
RYD_COUNTS_TTL = 3 * DAY
# Celery's queues (Redis lists): a fetch runs on any host, a write, scan or publish where the site is.
FETCH_QUEUE, WRITE_QUEUE, SCAN_QUEUE = QUEUES = ("fetch", "write", "scan")


def queued_key(path: str) -> str:
    """The dedupe key of one post (a hash: paths may hold any bytes)."""
    digest = hashlib.blake2s(os.fsencode(path), digest_size=12).hexdigest()
    return f"{PREFIX}:queued:{digest}"


def queued_ttl(visibility_timeout: int) -> int:
    """How long a queued post's key lives: a message the transport lost must not block it for good."""
    return 2 * visibility_timeout


def in_flight_ttl(api: ApiSettings) -> int:
    """How long a video stays marked in flight: the longest one fetch window can take, every retry
    included; a fetcher silent for longer is presumed dead and the waiting tasks fetch for themselves."""
    attempts = api.retry_attempts
    window = attempts * (api.connect_timeout + api.read_timeout) + (attempts - 1) * api.retry_max_wait
    return max(1, math.ceil(window))


def stats_key(vid_id: str) -> str:
    """The cache key of one video's last answer."""
    return f"{PREFIX}:stats:{vid_id}"


def quota_key(day: str) -> str:
    """The counter of quota units spent on one Pacific day."""
    return f"{PREFIX}:quota:{day}"


def thumbnail_key(vid_id: str) -> str:
    """Set while a refresh of the video's thumbnail is queued (in a write batch)."""
    return f"{PREFIX}:thumbnail:{vid_id}"


def outcomes_key(day: str) -> str:
    """The hash of write outcome counts for one Pacific day."""
    return f"{PREFIX}:outcomes:{day}"


def ryd_day_key(day: str) -> str:
    """Dislike requests sent on one UTC day, by all workers."""
    return f"{PREFIX}:ryd:day:{day}"


def ryd_minute_key(minute: int) -> str:
    """Dislike requests sent in one minute (epoch seconds // 60), by all workers."""
    return f"{PREFIX}:ryd:minute:{minute}"


def ryd_value_key(vid_id: str) -> str:
    """The cache key of one video's dislike estimate."""
    return f"{PREFIX}:ryd:value:{vid_id}"


def ryd_counts_key(day: str) -> str:
    """The hash of dislike outcomes (fetched, no_value, failed, waiting) of one UTC day."""
    return f"{PREFIX}:ryd:counts:{day}"
