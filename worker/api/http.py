"""The HTTP edge of every remote client: the one client, its requests, transient statuses, Retry-After."""

from __future__ import annotations

import contextlib
import importlib.metadata
import time
from collections.abc import AsyncIterator, Mapping
from email.utils import parsedate_to_datetime

import httpx

from worker.errors import TransientApiError
from worker.settings import Settings

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


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
        # Google compresses only when both headers ask for it.
        headers={"User-Agent": f"postrefresh/{package_version()} (gzip)", "Accept-Encoding": "gzip"},
        follow_redirects=False,
    )


def endpoint(base_url: str, path: str) -> str:
    """`path` under `base_url`, whether or not the base ends in "/" (`endpoint(api, "videos")`)."""
    return f"{base_url.rstrip('/')}/{path}"


@contextlib.asynccontextmanager
async def exchange(http: httpx.AsyncClient, url: str, *, what: str,
                   params: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
                   timeout: float | None = None, stream: bool = False,
                   ) -> AsyncIterator[httpx.Response]:
    """One GET through the shared client: its response, the body read unless `stream`.

    A transport failure, while sending or while the caller streams the body, leaves as the
    TransientApiError `transport_error(what, ...)`; `timeout` (seconds, every phase) overrides
    the client's. Redirects are never followed (the client is built that way).
    """
    try:
        async with http.stream("GET", url, params=params, headers=headers,
                               timeout=httpx.USE_CLIENT_DEFAULT if timeout is None
                               else httpx.Timeout(timeout)) as response:
            if not stream:
                await response.aread()
            yield response
    except httpx.TransportError as exc:
        raise transport_error(what, exc) from None


def raise_if_transient(response: httpx.Response, message: str, *, retryable: bool = False) -> None:
    """Raise TransientApiError(message, Retry-After wait) for a transient status or when `retryable`."""
    if retryable or response.status_code in TRANSIENT_STATUSES:
        raise TransientApiError(message, retry_after(response))


def retry_after(response: httpx.Response) -> float | None:
    """The wait a response's Retry-After asks for (seconds or an HTTP date); None if absent or unreadable."""
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


def transport_error(what: str, exc: httpx.TransportError) -> TransientApiError:
    """httpx's timeout or connection failure as "<what> timed out (ReadTimeout)", to be retried."""
    problem = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    return TransientApiError(f"{what} {problem} ({type(exc).__name__})")
