"""The HTTP edge of every remote client: the one client, transient statuses, Retry-After, transport errors."""

from __future__ import annotations

import importlib.metadata
import time
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
