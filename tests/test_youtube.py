"""The Data API client against the real simulator: batching, faults, retries, stop-on-fatal."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest

from tests.simulator_fixtures import API_KEY, FakeSleep, make_client, video_ids
from tests.simulator_fixtures import simulator as simulator
from worker.api.fields import request_mask
from worker.api.http import make_http_client
from worker.api.youtube import ApiMeter, YouTubeClient
from worker.errors import ApiKeyRejected, ApiUnreachable, QuotaExhausted
from worker.settings import Settings
from worker.simulator.server import YouTubeSimulator
from worker.simulator.truth import expected_fields

pytestmark = pytest.mark.timeout(20)


def run_with_client(sim: YouTubeSimulator,
                    body: Callable[[YouTubeClient], Awaitable[Any]], *,
                    key: str = API_KEY, read_timeout: float = 2.0, attempts: int = 6,
                    concurrency: int = 4, max_units: int | None = None,
                    sleep: Callable[[float], Awaitable[None]] | None = None,
                    fake_sleep: bool = True) -> Any:
    """Build a client on a fresh httpx.AsyncClient, run `body(client)`, close everything."""
    async def main() -> Any:
        async with make_client(read_timeout) as http:
            client = YouTubeClient(http, api_url=sim.url + "/youtube/v3", api_key=key,
                                   attempts=attempts, max_wait=5.0, concurrency=concurrency,
                                   meter=ApiMeter(), max_units=max_units,
                                   sleep=sleep or (FakeSleep() if fake_sleep else None))
            return await body(client)
    return asyncio.run(main())


def test_a_batch_of_50_returns_every_id_with_the_true_values(simulator: YouTubeSimulator) -> None:
    ids = video_ids(50)
    result = run_with_client(simulator, lambda c: c.list_videos(ids))
    assert result == {i: expected_fields(i, 0) for i in ids}
    assert simulator.counters.ids_requested == [ids]
    assert result[ids[0]]["contentDetails.duration"].startswith("PT")


def test_deleted_ids_are_absent_from_the_result(simulator: YouTubeSimulator) -> None:
    ids = video_ids(5)
    simulator.config = replace(simulator.config, deleted=frozenset(ids[:2]))
    result = run_with_client(simulator, lambda c: c.list_videos(ids))
    assert set(result) == set(ids[2:])


def test_an_item_that_was_not_asked_for_is_ignored(
        simulator: YouTubeSimulator, caplog: pytest.LogCaptureFixture) -> None:
    simulator.config = replace(simulator.config, fault_rate=1.0, faults=("foreign_item",))
    ids = video_ids(3)
    result = run_with_client(simulator, lambda c: c.list_videos(ids))
    assert set(result) == set(ids)
    assert "not asked for" in caplog.text


def test_a_statistic_that_is_not_a_number_is_dropped(simulator: YouTubeSimulator) -> None:
    simulator.config = replace(simulator.config, fault_rate=1.0, faults=("bad_stat",))
    ids = video_ids(2)
    result = run_with_client(simulator, lambda c: c.list_videos(ids))
    assert "statistics.viewCount" not in result[ids[0]]
    assert result[ids[0]]["snippet.title"] == expected_fields(ids[0], 0)["snippet.title"]
    assert result[ids[1]] == expected_fields(ids[1], 0)


def test_malformed_json_is_retried(simulator: YouTubeSimulator) -> None:
    simulator.config = replace(simulator.config, fault_rate=1.0, faults=("malformed",))

    async def heal(seconds: float) -> None:
        simulator.config = replace(simulator.config, fault_rate=0.0)

    ids = video_ids(3)
    result = run_with_client(simulator, lambda c: c.list_videos(ids), sleep=heal)
    assert result == {i: expected_fields(i, 0) for i in ids}
    assert simulator.counters.api_requests == 2


def test_thirty_percent_faults_on_40_batches_still_give_every_right_answer(
        simulator: YouTubeSimulator) -> None:
    simulator.config = replace(simulator.config, fault_rate=0.3, seed=7, retry_after=0.25,
                               faults=("500", "503", "429", "drop", "slow"))
    ids = video_ids(40 * 50, seed=3)
    batches = [ids[i:i + 50] for i in range(0, len(ids), 50)]
    meter = ApiMeter()

    async def body(client: YouTubeClient) -> list[dict[str, dict[str, str]]]:
        client.meter = meter
        return await asyncio.gather(*(client.list_videos(b) for b in batches))

    results = run_with_client(simulator, body, read_timeout=0.5, attempts=10, concurrency=8)
    merged = {k: v for r in results for k, v in r.items()}
    assert merged == {i: expected_fields(i, 0) for i in ids}
    assert meter.ok_calls == simulator.counters.api_ok == len(batches)
    assert simulator.counters.api_failed > 0
    assert meter.calls == simulator.counters.api_requests


def test_retry_after_is_waited_exactly(simulator: YouTubeSimulator) -> None:
    simulator.config = replace(simulator.config, fault_rate=1.0, faults=("429",), retry_after=3)
    sleep = FakeSleep()
    with pytest.raises(ApiUnreachable):
        run_with_client(simulator, lambda c: c.list_videos(video_ids(1)), attempts=3, sleep=sleep)
    assert sleep.waits == [3.0, 3.0]
    assert simulator.counters.api_requests == 3


def test_quota_exceeded_stops_after_one_request_and_waiting_calls_send_nothing(
        simulator: YouTubeSimulator) -> None:
    simulator.config = replace(simulator.config, quota_units=0)

    async def body(client: YouTubeClient) -> list[Any]:
        calls = [client.list_videos(video_ids(3, seed=s)) for s in range(6)]
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = run_with_client(simulator, body, concurrency=1)
    assert all(isinstance(o, QuotaExhausted) for o in outcomes)
    assert simulator.counters.api_requests == 1


def test_quota_running_out_mid_run_stops_every_later_call(simulator: YouTubeSimulator) -> None:
    simulator.config = replace(simulator.config, quota_units=2)

    async def body(client: YouTubeClient) -> list[str]:
        outcomes = []
        for seed in range(5):
            try:
                await client.list_videos(video_ids(2, seed=seed))
                outcomes.append("ok")
            except QuotaExhausted:
                outcomes.append("quota")
        return outcomes

    assert run_with_client(simulator, body) == ["ok", "ok", "quota", "quota", "quota"]
    assert simulator.counters.api_requests == 3


def test_an_invalid_key_is_rejected_without_retry(simulator: YouTubeSimulator) -> None:
    with pytest.raises(ApiKeyRejected) as caught:
        run_with_client(simulator, lambda c: c.list_videos(video_ids(1)), key="wrong-key-xyz")
    assert "wrong-key-xyz" not in str(caught.value)
    assert "keyInvalid" in str(caught.value)
    assert simulator.counters.api_requests == 1


def test_a_missing_key_is_rejected(simulator: YouTubeSimulator) -> None:
    with pytest.raises(ApiKeyRejected, match="forbidden"):
        run_with_client(simulator, lambda c: c.list_videos(video_ids(1)), key="")


def test_the_key_never_reaches_urls_logs_or_exceptions(
        simulator: YouTubeSimulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "worker"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    simulator.config = replace(simulator.config, fault_rate=0.5, seed=3,
                               faults=("500", "429", "drop", "malformed"), retry_after=0)
    texts = []
    run_with_client(simulator, lambda c: c.list_videos(video_ids(50)), attempts=10)
    for key in (API_KEY, "an-unknown-secret-key"):
        simulator.config = replace(simulator.config, fault_rate=1.0, faults=("500",))
        with pytest.raises((ApiUnreachable, ApiKeyRejected)) as caught:
            run_with_client(simulator, lambda c: c.list_videos(video_ids(2)), key=key, attempts=2)
        texts.append(repr(caught.value))
        simulator.config = replace(simulator.config, fault_rate=0.0, api_keys=frozenset())
    assert any(r.name.startswith("httpx") for r in caplog.records)
    assert simulator.counters.key_in_url_requests == 0
    for secret in (API_KEY, "an-unknown-secret-key"):
        assert secret not in caplog.text
        assert all(secret not in r.getMessage() for r in caplog.records)
        assert all(secret not in t for t in texts)


def test_max_units_stops_calling_once_the_budget_is_spent(simulator: YouTubeSimulator) -> None:
    async def body(client: YouTubeClient) -> str:
        await client.list_videos(video_ids(1, seed=1))
        await client.list_videos(video_ids(1, seed=2))
        with pytest.raises(QuotaExhausted, match="--max-units 2"):
            await client.list_videos(video_ids(1, seed=3))
        with pytest.raises(QuotaExhausted):
            await client.list_videos(video_ids(1, seed=4))
        return "done"

    assert run_with_client(simulator, body, max_units=2) == "done"
    assert simulator.counters.api_requests == 2


@pytest.mark.parametrize("ids", [[], ["not an id!"], ["abc"], video_ids(51),
                                 ["dQw4w9WgXcQ&key=x"]])
def test_bad_batches_raise_value_error_before_any_request(
        simulator: YouTubeSimulator, ids: list[str]) -> None:
    with pytest.raises(ValueError):
        run_with_client(simulator, lambda c: c.list_videos(ids))
    assert simulator.counters.api_requests == 0


def test_a_fatal_error_wakes_calls_sleeping_between_retries(simulator: YouTubeSimulator) -> None:
    simulator.config = replace(simulator.config, fault_rate=1.0, faults=("429",), retry_after=30)

    async def body(client: YouTubeClient) -> list[Any]:
        slow = asyncio.ensure_future(client.list_videos(video_ids(1, seed=1)))
        await asyncio.sleep(0.2)  # the first call is now sleeping out its Retry-After
        simulator.config = replace(simulator.config, fault_rate=0.0, quota_units=0)
        fatal = client.list_videos(video_ids(1, seed=2))
        return list(await asyncio.gather(slow, fatal, return_exceptions=True))

    outcomes = run_with_client(simulator, body, fake_sleep=False)
    assert [type(o) for o in outcomes] == [QuotaExhausted, QuotaExhausted]
    assert simulator.counters.api_requests == 2


def test_make_http_client_sets_timeouts_limits_and_no_key() -> None:
    settings = Settings().with_values(api_key="secret-abc", connect_timeout=1.5, read_timeout=4.0)

    async def main() -> httpx.Headers:
        async with make_http_client(settings) as http:
            assert http.timeout.connect == 1.5
            assert http.timeout.read == 4.0
            assert http.follow_redirects is False
            return http.headers

    headers = asyncio.run(main())
    assert headers["User-Agent"].startswith("postrefresh/")
    assert "secret-abc" not in str(dict(headers))


def _lean_client_run(sim: YouTubeSimulator, ids: list[str], fields: str | None,
                     settings: Settings | None = None) -> dict[str, dict[str, str]]:
    """One videos.list call through the real shared client (gzip headers), with `fields`."""
    async def main() -> dict[str, dict[str, str]]:
        async with make_http_client(settings or Settings()) as http:
            client = YouTubeClient(http, api_url=sim.url + "/youtube/v3", api_key=API_KEY,
                                   attempts=2, max_wait=1.0, concurrency=1, meter=ApiMeter(),
                                   fields=fields, sleep=FakeSleep())
            return await client.list_videos(ids)
    return asyncio.run(main())


def test_the_request_has_no_max_results_a_lean_mask_gzip_headers_and_the_key_in_a_header(
        simulator: YouTubeSimulator) -> None:
    settings = Settings()
    ids = video_ids(50)
    result = _lean_client_run(simulator, ids, request_mask(settings.api_paths))
    [query] = simulator.counters.api_queries
    assert set(query) == {"part", "id", "fields"}  # no maxResults (unsupported with id), no key
    assert query["id"] == ",".join(ids)
    assert query["fields"] == request_mask(settings.api_paths)
    assert query["fields"].startswith("items(id,statistics/viewCount,")
    [headers] = simulator.counters.api_headers
    assert headers["Accept-Encoding"] == "gzip"
    assert "gzip" in headers["User-Agent"] and headers["User-Agent"].startswith("postrefresh/")
    assert headers["X-Goog-Api-Key"] == "<key>"
    for vid_id in ids:
        truth = expected_fields(vid_id, 0)
        assert {p: result[vid_id].get(p) for p in settings.api_paths} == {
            p: truth.get(p) for p in settings.api_paths}
        assert "snippet.description" not in result[vid_id]


def test_a_mask_that_leaves_out_a_configured_path_fails_to_deliver_it(
        simulator: YouTubeSimulator) -> None:
    ids = video_ids(3)
    wrong = _lean_client_run(simulator, ids, "items(id,snippet/title)")
    assert all("statistics.viewCount" not in fields for fields in wrong.values())
    assert _lean_client_run(simulator, ids, "items(snippet/title)") == {}  # no id: nothing matches
    with pytest.raises(ApiUnreachable, match="invalidFields"):
        _lean_client_run(simulator, ids, "items(id,snippet/title")


def test_a_computed_field_asks_for_what_it_is_computed_from(simulator: YouTubeSimulator) -> None:
    mask = request_mask(["snippet.bestThumbnailUrl", "contentDetails.durationSeconds", "ryd.dislikes"])
    assert mask == "items(id,statistics/viewCount,snippet/thumbnails,contentDetails/duration)"
    [vid_id] = video_ids(1)
    result = _lean_client_run(simulator, [vid_id], mask)[vid_id]
    truth = expected_fields(vid_id, 0)
    for path in ("snippet.bestThumbnailUrl", "contentDetails.durationSeconds", "statistics.viewCount"):
        assert result[path] == truth[path]


def test_the_lean_gzipped_call_is_an_order_of_magnitude_smaller(
        simulator: YouTubeSimulator, capsys: pytest.CaptureFixture[str]) -> None:
    ids = video_ids(50)
    run_with_client(simulator, lambda c: c.list_videos(ids))  # before: full parts, no gzip asked
    before = simulator.counters.api_body_bytes
    _lean_client_run(simulator, ids, request_mask(Settings().api_paths))
    after = simulator.counters.api_body_bytes - before
    with capsys.disabled():
        print(f"\nvideos.list for 50 ids: {before} bytes before, {after} after "
              f"({before / after:.1f}x fewer)")
    assert after * 10 <= before


def test_requests_answered_key_invalid_or_quota_exceeded_cost_a_unit(
        simulator: YouTubeSimulator) -> None:
    meter = ApiMeter()

    async def call(key: str) -> None:
        async with make_client() as http:
            client = YouTubeClient(http, api_url=simulator.url + "/youtube/v3", api_key=key,
                                   attempts=2, max_wait=1.0, concurrency=1, meter=meter,
                                   sleep=FakeSleep())
            await client.list_videos(video_ids(2))
    with pytest.raises(ApiKeyRejected):
        asyncio.run(call("wrong-key"))
    assert meter.units == 1
    simulator.config = replace(simulator.config, quota_units=0)
    with pytest.raises(QuotaExhausted):
        asyncio.run(call(API_KEY))
    assert (meter.units, meter.calls) == (2, 2)


def test_a_rate_limit_reason_only_in_details_is_retried(simulator: YouTubeSimulator) -> None:
    simulator.config = replace(simulator.config, fault_rate=1.0, faults=("429_details",))

    async def wait_then_heal(seconds: float) -> None:
        simulator.config = replace(simulator.config, fault_rate=0.0)
    result = run_with_client(simulator, lambda c: c.list_videos(video_ids(1)), attempts=3,
                             sleep=wait_then_heal)
    assert len(result) == 1
    assert simulator.counters.api_requests == 2


def test_a_quota_reason_only_in_details_stops_the_client(simulator: YouTubeSimulator) -> None:
    simulator.config = replace(simulator.config, fault_rate=1.0, faults=("quota_details",))
    with pytest.raises(QuotaExhausted, match="quotaExceeded"):
        run_with_client(simulator, lambda c: c.list_videos(video_ids(1)), attempts=3)
    assert simulator.counters.api_requests == 1
