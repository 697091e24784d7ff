"""The YouTube Data API v3 client: batched videos.list calls, retries, and stop-on-fatal.

The key travels only in the `X-Goog-Api-Key` header of API requests; it is never in a URL,
a log line or an exception message. httpx errors are translated here into worker.errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from worker.api.fields import derived_fields
from worker.api.retry import retry_policy
from worker.errors import (
    ApiKeyRejected,
    ApiUnreachable,
    FatalApiError,
    QuotaExhausted,
    TransientApiError,
)
from worker.settings import Settings
from worker.video_id import is_video_id

log = logging.getLogger(__name__)

MAX_IDS = 50
PARTS = "statistics,snippet,contentDetails"
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded", "dailyLimitExceededUnreg"})
# rateLimitExceeded / userRateLimitExceeded are per-second limits: worth a retry, not a stop.
TRANSIENT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "backendError"})
KEY_REASONS = frozenset({"keyInvalid", "keyExpired", "forbidden", "accessNotConfigured",
                         "ipRefererBlocked", "API_KEY_INVALID"})
MAX_FLATTEN_DEPTH = 4


@dataclass
class ApiMeter:
    """Counts what the client spent; one instance is shared by every client of a run."""

    calls: int = 0
    ok_calls: int = 0
    failed_calls: int = 0
    units: int = 0
    retries: int = 0


class YouTubeClient:
    """Calls videos.list for batches of up to 50 ids through one shared httpx.AsyncClient."""

    def __init__(self, http: httpx.AsyncClient, *, api_url: str, api_key: str, attempts: int,
                 max_wait: float, concurrency: int, meter: ApiMeter,
                 max_units: int | None = None,
                 sleep: Callable[[float], Awaitable[None]] | None = None) -> None:
        self._http = http
        self._url = api_url.rstrip("/") + "/videos"
        self._key = api_key
        self._attempts = attempts
        self._max_wait = max_wait
        self._semaphore = asyncio.Semaphore(concurrency)
        self.meter = meter
        self._max_units = max_units
        self._sleep = sleep or self._interruptible_sleep
        self._fatal: FatalApiError | None = None
        self._stopped = asyncio.Event()
        self._in_flight = 0

    @property
    def fatal(self) -> FatalApiError | None:
        """The fatal error that stopped this client, if any."""
        return self._fatal

    async def list_videos(self, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Fetch 1..50 videos in one videos.list call: {id: {"statistics.viewCount": ...}}.

        Ids missing from the answer are missing from the result (deleted or private).
        """
        batch = _checked_batch(ids)
        self._raise_if_stopped()
        async with self._semaphore:
            try:
                async for attempt in retry_policy(attempts=self._attempts,
                                                  max_wait=self._max_wait, sleep=self._sleep):
                    with attempt:
                        self._raise_if_stopped()
                        number = attempt.retry_state.attempt_number
                        if number > 1:
                            self.meter.retries += 1
                        return await self._call(batch, number)
            except TransientApiError as exc:
                raise self._stop(ApiUnreachable(
                    f"the YouTube API kept failing after {self._attempts} attempts ({exc}); "
                    "check the network or the API status and rerun later")) from None
        raise AssertionError("the retry policy ended without an outcome")

    async def _call(self, batch: list[str], attempt: int) -> dict[str, dict[str, str]]:
        self._check_unit_budget()
        self.meter.calls += 1
        self._in_flight += 1
        try:
            response = await self._send(batch, attempt)
        finally:
            self._in_flight -= 1
        try:
            # A non-numeric stat is retried like a garbled answer while attempts remain; the
            # last attempt keeps the good fields and drops the bad one (the post keeps its value).
            return self._read(response, batch, strict=attempt < self._attempts)
        except TransientApiError as exc:
            self.meter.failed_calls += 1
            log.warning("videos.list attempt %d for %d ids failed: %s", attempt, len(batch), exc)
            raise

    async def _send(self, batch: list[str], attempt: int) -> httpx.Response:
        params = {"part": PARTS, "id": ",".join(batch), "maxResults": str(MAX_IDS)}
        try:
            return await self._http.get(self._url, params=params, follow_redirects=False,
                                        headers={"X-Goog-Api-Key": self._key})
        except httpx.TimeoutException as exc:
            problem = f"timed out ({type(exc).__name__})"
        except httpx.TransportError as exc:
            problem = f"connection failed ({type(exc).__name__})"
        self.meter.failed_calls += 1
        log.warning("videos.list attempt %d for %d ids failed: %s", attempt, len(batch), problem)
        raise TransientApiError(f"videos.list {problem}")

    def _read(self, response: httpx.Response, batch: list[str], strict: bool) -> dict[str, dict[str, str]]:
        status = response.status_code
        if status == 200:
            self.meter.units += 1
            result = _parse_items(response, batch, strict)
            self.meter.ok_calls += 1
            return result
        reason, message = _error_reason(response)
        message = message.replace(self._key, "<key>") if self._key else message
        if reason in QUOTA_REASONS:
            self.meter.failed_calls += 1
            raise self._stop(QuotaExhausted(
                f"the YouTube API quota is used up ({reason}); rerun after the daily reset"))
        if status == 401 or reason in KEY_REASONS or (status == 403 and reason not in
                                                       TRANSIENT_REASONS):
            self.meter.failed_calls += 1
            raise self._stop(ApiKeyRejected(
                f"the YouTube API refused the key ({status} {reason}: {message}); "
                "check YOUTUBE_API_KEY and that the YouTube Data API v3 is enabled for it"))
        self.meter.units += 1
        if status in TRANSIENT_STATUSES or reason in TRANSIENT_REASONS:
            raise TransientApiError(f"HTTP {status} {reason}", _retry_after(response))
        self.meter.failed_calls += 1
        raise self._stop(ApiUnreachable(
            f"the YouTube API rejected the request ({status} {reason}: {message}); "
            "this is a postrefresh bug, please report it"))

    def _check_unit_budget(self) -> None:
        if self._max_units is not None and self.meter.units + self._in_flight >= self._max_units:
            raise self._stop(QuotaExhausted(
                f"--max-units {self._max_units} reached; rerun later or raise the budget"))

    def _stop(self, error: FatalApiError) -> FatalApiError:
        if self._fatal is None:
            self._fatal = error
            self._stopped.set()
            log.error("stopping all API calls: %s", error)
        return error

    def _raise_if_stopped(self) -> None:
        if self._fatal is not None:
            raise type(self._fatal)(str(self._fatal))

    async def _interruptible_sleep(self, seconds: float) -> None:
        # Wakes early when another call hits a fatal error, so nobody waits to be stopped.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)


def _checked_batch(ids: Sequence[str]) -> list[str]:
    batch = list(dict.fromkeys(ids))
    if not 1 <= len(batch) <= MAX_IDS:
        raise ValueError(f"videos.list takes 1 to {MAX_IDS} ids, got {len(batch)}")
    bad = [repr(i)[:20] for i in batch if not is_video_id(i)]
    if bad:
        raise ValueError(f"not YouTube video ids: {', '.join(bad[:5])}")
    return batch


def _parse_items(response: httpx.Response, batch: list[str], strict: bool) -> dict[str, dict[str, str]]:
    try:
        payload = response.json()
    except ValueError:
        raise TransientApiError("videos.list answered 200 with malformed JSON") from None
    items = payload.get("items") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise TransientApiError("videos.list answered 200 without an items list")
    wanted = set(batch)
    result: dict[str, dict[str, str]] = {}
    for item in items:
        vid_id = item.get("id")
        if vid_id not in wanted:
            log.warning("videos.list returned an item for %r that was not asked for; ignored",
                        str(vid_id)[:20])
            continue
        result[vid_id] = _flat_fields(item, vid_id, strict)
    return result


def _flat_fields(item: Mapping[str, Any], vid_id: str, strict: bool) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in ("snippet", "contentDetails", "statistics"):
        if isinstance(item.get(part), Mapping):
            fields.update(_flatten(item[part], part))
    for path in [p for p in fields if p.startswith("statistics.")]:
        value = fields[path]
        if not (value.isascii() and value.isdigit()):
            if strict:
                raise TransientApiError(f"videos.list answered a non-numeric {path} for {vid_id}")
            log.warning("%s: %s is not a number (%r); dropped", vid_id, path, value[:20])
            del fields[path]
    fields.update(derived_fields(fields))  # computed fields, at no extra quota
    return fields


def _flatten(value: Mapping[str, Any], prefix: str, depth: int = 0) -> Iterator[tuple[str, str]]:
    for key, inner in value.items():
        path = f"{prefix}.{key}"
        if isinstance(inner, str):
            yield path, inner
        elif isinstance(inner, Mapping) and depth < MAX_FLATTEN_DEPTH:
            yield from _flatten(inner, path, depth + 1)


def _error_reason(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json()["error"]
        first = error["errors"][0] if error.get("errors") else {}
        return str(first.get("reason") or error.get("status") or "unknown"), str(
            error.get("message", ""))[:200]
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return "unknown", ""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def package_version() -> str:
    """The installed postrefresh version."""
    try:
        return importlib.metadata.version("postrefresh")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    """The one shared client, with explicit timeouts and pool limits; it carries no API key."""
    size = settings.api.concurrency + settings.thumbnails.concurrency
    timeout = httpx.Timeout(connect=settings.api.connect_timeout, read=settings.api.read_timeout,
                            write=settings.api.read_timeout, pool=settings.api.read_timeout)
    return httpx.AsyncClient(
        timeout=timeout,
        limits=httpx.Limits(max_connections=size, max_keepalive_connections=size,
                            keepalive_expiry=30.0),
        headers={"User-Agent": f"postrefresh/{package_version()}"},
        follow_redirects=False,
    )
