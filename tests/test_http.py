"""The HTTP edge the remote clients share: Retry-After read once, transport errors worded once."""

from __future__ import annotations

import time
from email.utils import formatdate

import httpx
import pytest

from worker.api.http import retry_after, transport_error

pytestmark = pytest.mark.timeout(20)


def answer(**headers: str) -> httpx.Response:
    """A 429 with the given headers."""
    return httpx.Response(429, headers=headers)


def test_retry_after_reads_seconds() -> None:
    assert retry_after(answer(**{"Retry-After": "2.5"})) == 2.5
    assert retry_after(answer(**{"Retry-After": "-3"})) == 0.0


def test_retry_after_reads_an_http_date_as_the_seconds_until_it() -> None:
    wait = retry_after(answer(**{"Retry-After": formatdate(time.time() + 30, usegmt=True)}))
    assert wait is not None and 28.0 < wait <= 30.0
    assert retry_after(answer(**{"Retry-After": formatdate(time.time() - 30, usegmt=True)})) == 0.0


@pytest.mark.parametrize("headers", [{}, {"Retry-After": "soon"}, {"Retry-After": ""}])
def test_a_missing_or_unreadable_retry_after_is_none(headers: dict[str, str]) -> None:
    assert retry_after(answer(**headers)) is None


def test_transport_errors_say_what_failed_and_how() -> None:
    request = httpx.Request("GET", "http://api.invalid/")
    timeout = transport_error("videos.list", httpx.ReadTimeout("slow", request=request))
    refused = transport_error("the dislike API", httpx.ConnectError("refused", request=request))
    assert str(timeout) == "videos.list timed out (ReadTimeout)"
    assert str(refused) == "the dislike API connection failed (ConnectError)"
    assert timeout.retry_after is None

