"""The YouTube Data API v3 client: batched videos.list calls, retries, and stop-on-fatal.

The key travels only in the `X-Goog-Api-Key` header of API requests; it is never in a URL,
a log line or an exception message. httpx errors are translated here into worker.errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from worker.api.fields import flat_fields
from worker.api.http import endpoint, exchange, raise_if_transient
from worker.api.retry import retry_policy
from worker.errors import (
    ApiKeyRejected,
    ApiUnreachable,
    FatalApiError,
    QuotaExhausted,
    TransientApiError,
)
from worker.video_id import is_video_id

log = logging.getLogger(__name__)

MAX_IDS = 50
PARTS = "statistics,snippet,contentDetails"
QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded", "dailyLimitExceededUnreg"})
# rateLimitExceeded / userRateLimitExceeded are per-second limits: worth a retry, not a stop.
TRANSIENT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "backendError",
                               "RATE_LIMIT_EXCEEDED"})
KEY_REASONS = frozenset({"keyInvalid", "keyExpired", "forbidden", "accessNotConfigured",
                         "ipRefererBlocked", "API_KEY_INVALID", "API_KEY_EXPIRED",
                         "SERVICE_DISABLED", "API_KEY_SERVICE_BLOCKED"})


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
                 max_units: int | None = None, fields: str | None = None,
                 sleep: Callable[[float], Awaitable[None]] | None = None) -> None:
        self._http = http
        self._url = endpoint(api_url, "videos")
        self._key = api_key
        self._attempts = attempts
        self._max_wait = max_wait
        self._semaphore = asyncio.Semaphore(concurrency)
        self.meter = meter
        self._max_units = max_units
        self._fields = fields
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
        try:
            response = await self._send(batch)
            # A non-numeric stat is retried like a garbled answer while attempts remain; the
            # last attempt keeps the good fields and drops the bad one (the post keeps its value).
            return self._read(response, batch, strict=attempt < self._attempts)
        except TransientApiError as exc:
            self.meter.failed_calls += 1
            log.warning("videos.list attempt %d for %d ids failed: %s", attempt, len(batch), exc)
            raise

    async def _send(self, batch: list[str]) -> httpx.Response:
        # No maxResults: the videos.list reference says it is not supported with `id`.
        params = {"part": PARTS, "id": ",".join(batch)}
        if self._fields:
            params["fields"] = self._fields
        self._in_flight += 1
        try:
            async with exchange(self._http, self._url, what="videos.list", params=params,
                                headers={"X-Goog-Api-Key": self._key}) as response:
                return response
        finally:
            self._in_flight -= 1

    def _read(self, response: httpx.Response, batch: list[str], strict: bool) -> dict[str, dict[str, str]]:
        status = response.status_code
        # Google charges every request that reached the API, refused ones included.
        self.meter.units += 1
        if status == 200:
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
        raise_if_transient(response, f"HTTP {status} {reason}", retryable=reason in TRANSIENT_REASONS)
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
        result[vid_id] = flat_fields(item, vid_id, strict=strict)
    return result


def _error_reason(response: httpx.Response) -> tuple[str, str]:
    """The error's deciding reason (quota over key over rate limit) and its message.

    Google puts reasons in `error.errors[].reason` and, in the newer envelope, in
    `error.details[].reason`; either may carry the one that matters.
    """
    try:
        error = response.json()["error"]
        reasons = [str(entry["reason"]) for key in ("errors", "details")
                   for entry in error.get(key) or [] if isinstance(entry, dict) and entry.get("reason")]
        message = str(error.get("message", ""))[:200]
    except (ValueError, KeyError, TypeError, AttributeError):
        return "unknown", ""
    for known in (QUOTA_REASONS, KEY_REASONS, TRANSIENT_REASONS):
        found = [r for r in reasons if r in known]
        if found:
            return found[0], message
    return (reasons[0] if reasons else str(error.get("status") or "unknown")), message
