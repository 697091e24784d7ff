"""Thumbnails against the real simulator: conditional GETs, fallbacks, caps and checks."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.simulator_fixtures import FakeSleep, make_client, video_ids
from tests.simulator_fixtures import simulator as simulator
from worker.api.thumbnails import (
    ThumbnailResult,
    Validators,
    image_kind,
    refresh_thumbnail,
    thumbnail_budget_exceeded,
    thumbnail_folder_bytes,
)
from worker.errors import ThumbnailError
from worker.simulator.server import YouTubeSimulator
from worker.simulator.truth import thumbnail_bytes

pytestmark = pytest.mark.timeout(20)
VID = video_ids(1, seed=42)[0]
OLD = b"old thumbnail bytes"


def refresh(sim: YouTubeSimulator, target: Path, *, sizes: tuple[str, ...] = ("hq",),
            previous: Validators | None = None, max_bytes: int = 100_000,
            vid_id: str = VID, sleep: FakeSleep | None = None, **kw: Any) -> ThumbnailResult:
    """Run refresh_thumbnail once on a fresh real httpx client."""
    async def main() -> ThumbnailResult:
        async with make_client(read_timeout=1.0) as http:
            return await refresh_thumbnail(
                http, base_url=sim.url, vid_id=vid_id, sizes=sizes, target=target,
                previous=previous, max_bytes=max_bytes, attempts=3, max_wait=1.0,
                sleep=sleep or FakeSleep(), **kw)
    return asyncio.run(main())


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return tmp_path / f"{VID}.jpg"


def test_a_new_thumbnail_is_stored_with_its_validators(
        simulator: YouTubeSimulator, target: Path) -> None:
    result = refresh(simulator, target)
    assert result.status == "stored"
    assert result.size == "hq"
    assert target.read_bytes() == thumbnail_bytes(VID, 0, "hq")
    assert result.bytes_written == target.stat().st_size
    assert result.validators is not None and result.validators.etag
    assert result.validators.last_modified and result.validators.size == "hq"


def test_an_unchanged_thumbnail_is_not_rewritten(
        simulator: YouTubeSimulator, target: Path) -> None:
    first = refresh(simulator, target)
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))
    second = refresh(simulator, target, previous=first.validators)
    assert second.status == "unchanged" and second.bytes_written == 0
    assert target.stat().st_mtime_ns == 1_000_000_000
    assert simulator.counters.thumb_304 == 1


def test_last_modified_alone_gives_a_304(simulator: YouTubeSimulator, target: Path) -> None:
    first = refresh(simulator, target)
    assert first.validators is not None
    only_date = Validators(None, first.validators.last_modified, "hq")
    assert refresh(simulator, target, previous=only_date).status == "unchanged"


def test_a_new_epoch_stores_the_new_image(simulator: YouTubeSimulator, target: Path) -> None:
    first = refresh(simulator, target)
    simulator.config = replace(simulator.config, epoch=1)
    second = refresh(simulator, target, previous=first.validators)
    assert second.status == "stored"
    assert target.read_bytes() == thumbnail_bytes(VID, 1, "hq")


def test_a_missing_size_falls_back_to_the_next(
        simulator: YouTubeSimulator, target: Path) -> None:
    simulator.config = replace(simulator.config, thumb_missing_sizes=frozenset({"maxres", "sd"}))
    result = refresh(simulator, target, sizes=("maxres", "sd", "hq"))
    assert (result.status, result.size) == ("stored", "hq")
    again = refresh(simulator, target, sizes=("maxres", "sd", "hq"), previous=result.validators)
    assert (again.status, again.size) == ("unchanged", "hq")


def test_no_size_available_is_absent_and_leaves_the_file(
        simulator: YouTubeSimulator, target: Path) -> None:
    target.write_bytes(OLD)
    simulator.config = replace(simulator.config, deleted=frozenset({VID}))
    result = refresh(simulator, target, sizes=("maxres", "hq"))
    assert result == ThumbnailResult("absent", None, None, 0)
    assert target.read_bytes() == OLD


@pytest.mark.parametrize(("fault", "message"), [
    ("huge", "cap"),
    ("html", "HTML"),
    ("truncated", "not a complete image"),
    ("redirect", "elsewhere.invalid"),
    ("redirect_loop", "refused"),
    ("503", "kept failing"),
])
def test_every_failure_keeps_the_previous_file(
        simulator: YouTubeSimulator, target: Path, fault: str, message: str) -> None:
    target.write_bytes(OLD)
    simulator.config = replace(simulator.config, thumb_fault=fault, retry_after=0.5)
    sleep = FakeSleep()
    with pytest.raises(ThumbnailError, match=message):
        refresh(simulator, target, max_bytes=50_000, sleep=sleep)
    assert target.read_bytes() == OLD
    assert [p.name for p in target.parent.iterdir()] == [target.name]
    if fault == "503":
        assert sleep.waits == [0.5, 0.5]


@pytest.mark.parametrize(("ahead", "max_wait", "low", "high"), [
    (20, 60.0, 18.0, 20.0),  # obeyed: the date is about 20 s away (HTTP dates have whole seconds)
    (3600, 1.0, 1.0, 1.0),  # capped at max_wait
])
def test_an_http_date_retry_after_is_obeyed_capped_at_max_wait(
        target: Path, ahead: int, max_wait: float, low: float, high: float) -> None:
    date = format_datetime(datetime.now(UTC) + timedelta(seconds=ahead), usegmt=True)
    transport = httpx.MockTransport(lambda _: httpx.Response(503, headers={"Retry-After": date}))
    sleep = FakeSleep()

    async def main() -> ThumbnailResult:
        async with httpx.AsyncClient(transport=transport) as http:
            return await refresh_thumbnail(
                http, base_url="http://thumbs.invalid", vid_id=VID, sizes=("hq",), target=target,
                previous=None, max_bytes=100_000, attempts=3, max_wait=max_wait, sleep=sleep)

    with pytest.raises(ThumbnailError, match="kept failing"):
        asyncio.run(main())
    assert len(sleep.waits) == 2
    assert all(low <= wait <= high for wait in sleep.waits)


def test_an_oversize_body_is_aborted_without_a_content_length_check(
        simulator: YouTubeSimulator, target: Path) -> None:
    with pytest.raises(ThumbnailError, match="cap"):
        refresh(simulator, target, max_bytes=100)
    assert not target.exists()


def test_no_api_key_is_sent_to_the_thumbnail_host(
        simulator: YouTubeSimulator, target: Path) -> None:
    simulator.config = replace(simulator.config, thumb_missing_sizes=frozenset({"maxres"}))
    refresh(simulator, target, sizes=("maxres", "hq"))
    assert simulator.counters.thumb_requests == 2
    assert simulator.counters.key_to_thumb_host_requests == 0


@pytest.mark.parametrize("vid_id", ["short", "../../etc/pass", "dQw4w9WgXc/", ""])
def test_an_invalid_id_is_refused_before_any_request(
        simulator: YouTubeSimulator, target: Path, vid_id: str) -> None:
    with pytest.raises(ValueError):
        refresh(simulator, target, vid_id=vid_id)
    assert simulator.counters.thumb_requests == 0


def test_image_kinds_need_complete_files() -> None:
    jpeg = thumbnail_bytes(VID, 0, "hq")
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20 + b"IEND\xaeB`\x82"
    webp_body = b"WEBPVP8 " + b"\x00" * 10
    webp = b"RIFF" + len(webp_body).to_bytes(4, "little") + webp_body
    assert [image_kind(d) for d in (jpeg, png, webp)] == ["jpeg", "png", "webp"]
    assert [image_kind(d) for d in (jpeg[:-1], png[:-3], webp[:-1], b"<html>")] == [None] * 4


def test_the_folder_budget_warns_when_passed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"x" * 600_000)
    (tmp_path / "y.jpg").write_bytes(b"y" * 500_000)
    assert thumbnail_folder_bytes(tmp_path) == 1_100_000
    assert thumbnail_folder_bytes(tmp_path / "missing") == 0
    assert not thumbnail_budget_exceeded(tmp_path, 2)
    assert thumbnail_budget_exceeded(tmp_path, 1)
    assert "over its 1 MB budget" in caplog.text
