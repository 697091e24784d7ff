"""The simulator itself: real API shapes, errors, thumbnails, faults, counters and load."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from typing import Any

import httpx
import pytest

from tests.simulator_fixtures import API_KEY, make_client, video_ids
from tests.simulator_fixtures import simulator as simulator
from worker.simulator.config import SimulatorConfig
from worker.simulator.server import YouTubeSimulator
from worker.simulator.truth import has_hidden_likes, thumbnail_bytes, video_truth

pytestmark = pytest.mark.timeout(20)
HEADERS = {"X-Goog-Api-Key": API_KEY}


def videos(sim: YouTubeSimulator, ids: list[str], part: str = "statistics,snippet,contentDetails",
           headers: dict[str, str] | None = None, **params: str) -> httpx.Response:
    """One plain synchronous videos.list request."""
    query = {"part": part, "id": ",".join(ids), **params}
    with httpx.Client(verify=False) as http:
        return http.get(sim.url + "/youtube/v3/videos", params=query,
                        headers=HEADERS if headers is None else headers)


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == response.status_code
    return dict(error["errors"][0])


def test_videos_list_has_the_real_response_shape(simulator: YouTubeSimulator) -> None:
    ids = video_ids(3)
    body = videos(simulator, ids).json()
    assert body["kind"] == "youtube#videoListResponse" and body["etag"]
    assert body["pageInfo"] == {"totalResults": 3, "resultsPerPage": 3}
    item = body["items"][0]
    assert item["kind"] == "youtube#video" and item["id"] == ids[0] and item["etag"]
    assert {k: item[k] for k in ("snippet", "contentDetails", "statistics")} == video_truth(ids[0], 0)
    assert all(v.isdigit() for v in item["statistics"].values())


def test_only_the_requested_parts_are_returned(simulator: YouTubeSimulator) -> None:
    item = videos(simulator, video_ids(1), part="statistics").json()["items"][0]
    assert set(item) == {"kind", "etag", "id", "statistics"}


def test_views_grow_with_the_epoch(simulator: YouTubeSimulator) -> None:
    ids = video_ids(5)
    before = [int(i["statistics"]["viewCount"]) for i in videos(simulator, ids).json()["items"]]
    simulator.config = replace(simulator.config, epoch=3)
    after = [int(i["statistics"]["viewCount"]) for i in videos(simulator, ids).json()["items"]]
    assert all(a > b for a, b in zip(after, before, strict=True))


def test_about_two_percent_of_ids_hide_their_likes() -> None:
    ids = video_ids(5000, seed=9)
    hidden = [i for i in ids if has_hidden_likes(i)]
    assert 0.01 < len(hidden) / len(ids) < 0.03
    assert "likeCount" not in video_truth(hidden[0], 0)["statistics"]


def test_more_than_50_ids_is_a_bad_request(simulator: YouTubeSimulator) -> None:
    response = videos(simulator, video_ids(51))
    assert response.status_code == 400
    assert error_of(response)["reason"] == "invalidFilters"


def test_key_errors_and_quota_use_the_real_reasons(simulator: YouTubeSimulator) -> None:
    missing = videos(simulator, video_ids(1), headers={})
    assert (missing.status_code, error_of(missing)["reason"]) == (403, "forbidden")
    wrong = videos(simulator, video_ids(1), headers={"X-Goog-Api-Key": "nope"})
    assert wrong.status_code == 400
    assert error_of(wrong) == {"reason": "keyInvalid", "domain": "usageLimits",
                               "message": "API key not valid. Please pass a valid API key."}
    simulator.config = replace(simulator.config, quota_units=1)
    assert videos(simulator, video_ids(1)).status_code == 200
    quota = videos(simulator, video_ids(1))
    assert quota.status_code == 403
    assert error_of(quota)["reason"] == "quotaExceeded"
    assert error_of(quota)["domain"] == "youtube.quota"
    assert simulator.counters.units_used == 1


def test_a_key_in_the_url_works_but_is_counted(simulator: YouTubeSimulator) -> None:
    assert videos(simulator, video_ids(1), headers={}, key=API_KEY).status_code == 200
    assert simulator.counters.key_in_url_requests == 1


def test_fault_draws_are_deterministic_for_a_seed() -> None:
    def statuses() -> list[int]:
        config = SimulatorConfig(api_keys=frozenset({API_KEY}), fault_rate=0.5, seed=5,
                                 faults=("500", "503", "429"))
        with YouTubeSimulator(config) as sim:
            return [videos(sim, video_ids(1)).status_code for _ in range(30)]

    first = statuses()
    assert first == statuses()
    assert 200 in first and set(first) - {200}


def test_the_429_fault_carries_retry_after(simulator: YouTubeSimulator) -> None:
    simulator.config = replace(simulator.config, fault_rate=1.0, faults=("429",), retry_after=2)
    response = videos(simulator, video_ids(1))
    assert (response.status_code, response.headers["Retry-After"]) == (429, "2")


def test_the_drop_fault_closes_without_a_response(simulator: YouTubeSimulator) -> None:
    simulator.config = replace(simulator.config, fault_rate=1.0, faults=("drop",))
    with pytest.raises(httpx.RemoteProtocolError):
        videos(simulator, video_ids(1))
    assert simulator.counters.api_failed == 1


def test_thumbnails_are_jpegs_with_validators_and_304s(simulator: YouTubeSimulator) -> None:
    vid = video_ids(1)[0]
    url = f"{simulator.url}/vi/{vid}/hqdefault.jpg"
    first = httpx.get(url)
    assert first.content == thumbnail_bytes(vid, 0, "hq")
    assert first.content[:3] == b"\xff\xd8\xff" and first.content[-2:] == b"\xff\xd9"
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert httpx.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    simulator.config = replace(simulator.config, epoch=1)
    assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 200
    assert simulator.counters.thumb_304 == 2


def test_missing_sizes_and_deleted_ids_are_404(simulator: YouTubeSimulator) -> None:
    vid, gone = video_ids(2)
    simulator.config = replace(simulator.config, deleted=frozenset({gone}),
                               thumb_missing_sizes=frozenset({"maxres"}))
    assert httpx.get(f"{simulator.url}/vi/{vid}/maxresdefault.jpg").status_code == 404
    assert httpx.get(f"{simulator.url}/vi/{vid}/sddefault.jpg").status_code == 200
    assert httpx.get(f"{simulator.url}/vi/{gone}/hqdefault.jpg").status_code == 404


async def _keep_alive_client(port: int, requests: int, statuses: list[bytes]) -> None:
    # Raw HTTP/1.1 on one kept-alive connection: this measures the server, not a client library.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (f"GET /youtube/v3/videos?part=statistics&id={video_ids(1)[0]} HTTP/1.1\r\n"
               f"Host: sim\r\nX-Goog-Api-Key: {API_KEY}\r\n\r\n").encode()
    for _ in range(requests):
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        statuses.append(head.split(b" ", 2)[1])
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await reader.readexactly(length)
    writer.close()
    await writer.wait_closed()


def test_64_kept_alive_connections_serve_10000_requests_and_leak_no_threads() -> None:
    baseline = threading.active_count()
    statuses: list[bytes] = []
    config = SimulatorConfig(api_keys=frozenset({API_KEY}), latency=0.001)
    with YouTubeSimulator(config) as sim:
        port = int(sim.url.rsplit(":", 1)[1])

        async def load() -> None:
            await asyncio.gather(*(_keep_alive_client(port, 157, statuses) for _ in range(64)))

        asyncio.run(load())
        assert sim.counters.api_requests == 64 * 157
    assert statuses == [b"200"] * (64 * 157)
    deadline = time.monotonic() + 3
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= baseline


def test_stop_closes_idle_keep_alive_connections() -> None:
    baseline = threading.active_count()

    async def idle_clients(sim: YouTubeSimulator) -> None:
        async with make_client(connections=8) as http:
            url = f"{sim.url}/vi/{video_ids(1)[0]}/hqdefault.jpg"
            await asyncio.gather(*(http.get(url) for _ in range(8)))
            sim.stop()

    sim = YouTubeSimulator().start()
    asyncio.run(idle_clients(sim))
    deadline = time.monotonic() + 3
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= baseline


def test_fields_selects_as_google_documents_it(simulator: YouTubeSimulator) -> None:
    ids = video_ids(2)
    nested = videos(simulator, ids, fields="items(id,snippet(title,thumbnails),statistics)").json()
    assert set(nested) == {"items"}
    for item in nested["items"]:
        assert set(item) == {"id", "snippet", "statistics"}
        assert set(item["snippet"]) == {"title", "thumbnails"}
        assert "viewCount" in item["statistics"]
    slashed = videos(simulator, ids, fields="items(id,statistics/viewCount),etag").json()
    assert set(slashed) == {"items", "etag"}
    assert all(set(item["statistics"]) == {"viewCount"} for item in slashed["items"])
    starred = videos(simulator, ids, fields="items(id,snippet/thumbnails/*/url)").json()
    thumbs = starred["items"][0]["snippet"]["thumbnails"]
    assert thumbs and all(set(size) == {"url"} for size in thumbs.values())
    assert videos(simulator, ids, fields="*").json() == videos(simulator, ids).json()


def test_a_malformed_fields_mask_is_a_bad_request(simulator: YouTubeSimulator) -> None:
    for mask in ("items(id", "items()", "items(id,,x)", "a*b"):
        response = videos(simulator, video_ids(1), fields=mask)
        assert response.status_code == 400, mask
        assert error_of(response)["reason"] == "invalidFields"


def test_max_results_with_id_is_a_bad_request(simulator: YouTubeSimulator) -> None:
    response = videos(simulator, video_ids(1), maxResults="50")
    assert response.status_code == 400
    assert error_of(response)["reason"] == "unsupportedParameter"


def test_the_answer_is_gzipped_only_when_both_headers_ask(simulator: YouTubeSimulator) -> None:
    def encoding(headers: dict[str, str]) -> str | None:
        response = videos(simulator, video_ids(3), headers={**HEADERS, **headers})
        assert response.json()["items"]  # httpx decodes gzip
        return response.headers.get("Content-Encoding")
    assert encoding({"Accept-Encoding": "gzip", "User-Agent": "postrefresh/0.2 (gzip)"}) == "gzip"
    assert encoding({"Accept-Encoding": "gzip", "User-Agent": "postrefresh/0.2"}) is None
    assert encoding({"Accept-Encoding": "identity", "User-Agent": "x (gzip)"}) is None


def test_the_request_is_recorded_as_seen_with_the_key_withheld(simulator: YouTubeSimulator) -> None:
    videos(simulator, video_ids(1), fields="items(id)")
    assert simulator.counters.api_queries[-1]["fields"] == "items(id)"
    assert simulator.counters.api_headers[-1]["X-Goog-Api-Key"] == "<key>"


def test_reasons_in_the_newer_envelope_are_only_in_details(simulator: YouTubeSimulator) -> None:
    simulator.config = replace(simulator.config, fault_rate=1.0, faults=("429_details",))
    response = videos(simulator, video_ids(1))
    assert response.status_code == 429
    error = response.json()["error"]
    assert "errors" not in error and error["details"][0]["reason"] == "RATE_LIMIT_EXCEEDED"
