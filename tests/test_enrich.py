"""Computed fields at no extra quota: duration in seconds, channel id, best thumbnail URL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult
from tests.test_run import mapping, video_posts
from worker.api.fields import best_thumbnail_url, derived_fields, duration_seconds
from worker.simulator.server import YouTubeSimulator
from worker.simulator.truth import expected_fields, video_truth

pytestmark = pytest.mark.timeout(60)
Cli = Callable[..., CliResult]
ENRICH = """
[fields]
viewcount = "statistics.viewCount"
likeCount = "statistics.likeCount"
commentCount = "statistics.commentCount"
duration_seconds = "contentDetails.durationSeconds"
channel_id = "snippet.channelId"
best_thumbnail = "snippet.bestThumbnailUrl"
"""


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("P0D", 0), ("PT0S", 0), ("P1DT1S", 86_401), ("PT1H2M3S", 3_723), ("PT45S", 45), ("PT2M", 120),
     ("PT10H", 36_000), ("P1W", 604_800), ("P2DT3H4M5S", 183_845)],
)
def test_an_iso_8601_duration_becomes_seconds(text: str, seconds: int) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "P", "PT", "1H", "PT1.5S", "PT-1S", "P1Y", "PT1S2M"])
def test_something_that_is_not_a_duration_gives_no_seconds(text: str) -> None:
    assert duration_seconds(text) is None


def test_the_best_thumbnail_falls_back_from_maxres_to_default() -> None:
    base = "snippet.thumbnails."
    every = {f"{base}{s}.url": s for s in ("default", "medium", "high", "standard", "maxres")}
    assert best_thumbnail_url(every) == "maxres"
    assert best_thumbnail_url({k: v for k, v in every.items() if "maxres" not in k}) == "standard"
    assert best_thumbnail_url({f"{base}medium.url": "m", f"{base}default.url": "d"}) == "m"
    assert best_thumbnail_url({}) is None
    assert derived_fields({"contentDetails.duration": "soon"}) == {}


def test_the_simulator_lists_thumbnails_like_the_real_api(sim: YouTubeSimulator) -> None:
    sizes = [set(video_truth(f"id{n:09d}", 0)["snippet"]["thumbnails"]) for n in range(30)]
    assert {"default", "medium", "high"} <= set.intersection(*sizes)
    assert any("maxres" in s for s in sizes) and any("maxres" not in s for s in sizes)
    fields = expected_fields("QkqV7TrhN-c", 0)
    assert fields["snippet.thumbnails.default.url"] == "https://i.ytimg.com/vi/QkqV7TrhN-c/default.jpg"
    assert fields["snippet.bestThumbnailUrl"].startswith("https://i.ytimg.com/vi/QkqV7TrhN-c/")


def test_mapped_enrichment_fields_are_written_and_cost_no_extra_call(cli: Cli, site: Path,
                                                                     sim: YouTubeSimulator) -> None:
    (site / "_postrefresh.toml").write_text(ENRICH)
    result = cli("run", "--site", str(site), "--no-thumbnails")
    assert result.code == 0, result.err
    assert sim.counters.api_requests == 1
    for post in video_posts(site):
        values = mapping(post)
        truth = expected_fields(str(values["vid_id"]), 0)
        assert values["duration_seconds"] == truth["contentDetails.durationSeconds"]
        assert values["channel_id"] == truth["snippet.channelId"]
        assert values["best_thumbnail"] == truth["snippet.bestThumbnailUrl"]


def test_enrichment_is_off_unless_mapped(cli: Cli, site: Path) -> None:
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    for post in video_posts(site):
        assert not {"duration_seconds", "channel_id", "best_thumbnail"} & set(mapping(post))
