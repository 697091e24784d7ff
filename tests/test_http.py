"""The HTTP edge the remote clients share: one request helper, statuses, Retry-After and transport errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate
from typing import Any

import httpx
import pytest

from worker.api.http import endpoint, exchange, raise_if_transient, retry_after, transport_error
from worker.errors import TransientApiError

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



def test_endpoint_joins_a_path_under_a_base_with_or_without_its_slash() -> None:
    assert endpoint("http://api.invalid/youtube/v3", "videos") == "http://api.invalid/youtube/v3/videos"
    assert endpoint("http://api.invalid/youtube/v3/", "videos") == "http://api.invalid/youtube/v3/videos"


@pytest.mark.parametrize(("status", "retryable", "transient"), [
    (503, False, True), (429, False, True), (403, True, True), (200, False, False), (404, False, False),
])
def test_raise_if_transient_raises_for_transient_statuses_with_their_retry_after(
        status: int, retryable: bool, transient: bool) -> None:
    response = httpx.Response(status, headers={"Retry-After": "3"})
    if not transient:
        raise_if_transient(response, "busy", retryable=retryable)
        return
    with pytest.raises(TransientApiError, match=r"^busy$") as caught:
        raise_if_transient(response, "busy", retryable=retryable)
    assert caught.value.retry_after == 3.0


class CutBody(httpx.AsyncByteStream):
    """A body whose connection drops after the first chunk."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"first"
        raise httpx.ReadError("connection reset")


def through(handler: Callable[[httpx.Request], httpx.Response], *, stream: bool = False,
            **kw: Any) -> bytes:
    """The body `exchange` gives for one GET answered by `handler`, read or streamed."""
    async def main() -> bytes:
        async with (httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http,
                    exchange(http, "http://api.invalid/x", what="the test API", stream=stream,
                             **kw) as response):
            if stream:
                return b"".join([chunk async for chunk in response.aiter_bytes()])
            return response.content
    return asyncio.run(main())


def test_exchange_reads_the_body_and_sends_params_headers_and_a_timeout_over_the_clients() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"body")

    assert through(handler, params={"id": "a"}, headers={"X-Test": "1"}, timeout=2.5) == b"body"
    assert seen[0].url.params["id"] == "a" and seen[0].headers["X-Test"] == "1"
    assert seen[0].extensions["timeout"] == {"connect": 2.5, "read": 2.5, "write": 2.5, "pool": 2.5}
    through(handler)  # no timeout given: the client's own (httpx's default, 5 s), never none at all
    assert seen[1].extensions["timeout"] == {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}


@pytest.mark.parametrize("stream", [False, True])
def test_exchange_turns_a_transport_failure_into_a_transient_error(stream: bool) -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(TransientApiError, match=r"^the test API connection failed \(ConnectError\)$"):
        through(refused, stream=stream)


@pytest.mark.parametrize("stream", [False, True])
def test_exchange_turns_a_body_cut_midway_into_a_transient_error(stream: bool) -> None:
    with pytest.raises(TransientApiError, match=r"^the test API connection failed \(ReadError\)$"):
        through(lambda _: httpx.Response(200, stream=CutBody()), stream=stream)
