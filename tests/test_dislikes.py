"""Dislikes from the Return YouTube Dislike API: opt-in, rate-limited, written like any stat."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
import redis

from tests.celery_fixtures import redis_client, redis_url
from tests.conftest import CliResult
from tests.simulator_fixtures import make_client, simulator, video_ids
from tests.test_run import assert_matches_truth, mapping, video_posts
from worker.api.dislikes import DislikeClient, DislikeMeter
from worker.api.rate_limit import TokenBucket
from worker.shared.limiter import RedisWindowLimiter
from worker.simulator.server import YouTubeSimulator
from worker.simulator.votes import expected_dislikes
from worker.site.state import SiteState, dislike_budget_day
from worker.times import utc_day

__all__ = ["redis_client", "redis_url", "simulator"]  # fixtures used below
pytestmark = pytest.mark.timeout(60)
Cli = Callable[..., CliResult]


def turn_on(site: Path, sim: YouTubeSimulator, extra: str = "") -> None:
    (site / "_postrefresh.toml").write_text(f'dislikes = true\ndislikes_url = "{sim.url}"\n{extra}')


def test_dislikes_are_off_by_default_and_no_votes_request_is_made(cli: Cli, site: Path,
                                                                  sim: YouTubeSimulator) -> None:
    before = {p: mapping(p).get("dislikeCount") for p in video_posts(site)}
    result = cli("run", "--site", str(site), "--no-thumbnails")
    assert result.code == 0, result.err
    assert sim.counters.votes_requests == 0
    assert "dislikes" not in result.out
    assert {p: mapping(p).get("dislikeCount") for p in video_posts(site)} == before


def test_run_writes_each_posts_estimated_dislikes_next_to_its_stats(cli: Cli, site: Path,
                                                                    sim: YouTubeSimulator) -> None:
    turn_on(site, sim)
    result = cli("run", "--site", str(site), "--no-thumbnails")
    assert result.code == 0, result.err
    posts = video_posts(site)
    ids = {str(mapping(p)["vid_id"]) for p in posts}
    for post in posts:
        assert_matches_truth(post)
        assert mapping(post)["dislikeCount"] == str(expected_dislikes(str(mapping(post)["vid_id"])))
    assert sim.counters.votes_requests == len(ids)  # a shared id is asked once
    assert f"dislikes: {len(ids)} fetched" in result.out
    again = cli("run", "--site", str(site), "--no-thumbnails")
    assert "refreshed: 0" in again.out


def test_the_daily_limit_leaves_the_rest_for_tomorrow_and_stats_are_still_refreshed(
        cli: Cli, site: Path, sim: YouTubeSimulator) -> None:
    turn_on(site, sim, "dislikes_per_day = 5\n")
    result = cli("run", "--site", str(site), "--no-thumbnails", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    ids = {str(mapping(p)["vid_id"]) for p in video_posts(site)}
    assert report["dislikes"]["fetched"] == 5 and report["dislikes"]["waiting"] == len(ids) - 5
    assert sim.counters.votes_requests == 5
    for post in video_posts(site):
        assert_matches_truth(post)
    second = cli("run", "--site", str(site), "--no-thumbnails")
    assert sim.counters.votes_requests == 5  # the day's budget is kept across runs
    assert f"dislikes: 0 fetched, {len(ids)} wait for tomorrow's limit" in second.out


def test_the_dislike_budget_is_no_youtube_quota_day_in_the_report(cli: Cli, site: Path,
                                                                 sim: YouTubeSimulator) -> None:
    turn_on(site, sim, "dislikes_per_day = 5\n")
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    with SiteState(site) as state:
        days = state.quota_days()  # what the report's quota chart lists
        assert state.units_on(dislike_budget_day(utc_day(time.time()))) == 5
    assert days and all(date.fromisoformat(day) for day, _ in days), days


def test_dry_run_shows_the_dislike_change_in_the_diff(cli: Cli, site: Path, sim: YouTubeSimulator) -> None:
    turn_on(site, sim)
    result = cli("run", "--site", str(site), "--dry-run", "--no-thumbnails")
    assert result.code == 0
    assert "+dislikeCount: " in result.out


def test_a_429_is_honoured_with_its_retry_after_and_every_video_is_answered(
        simulator: YouTubeSimulator) -> None:
    simulator.config = dataclasses.replace(simulator.config, votes_per_minute=3, votes_window=0.3)
    ids = video_ids(7, seed=3)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(seconds)

    async def fetch_all() -> list[str | None]:
        async with make_client() as http:
            client = DislikeClient(http, base_url=simulator.url, timeout=2.0, attempts=6,
                                   max_wait=1.0, meter=DislikeMeter(), sleep=sleep)
            return [await client.dislikes(vid) for vid in ids]

    assert asyncio.run(fetch_all()) == [str(expected_dislikes(vid)) for vid in ids]
    assert simulator.counters.votes_429 >= 1
    assert waits and all(0 < w <= 0.31 for w in waits)


def test_a_deleted_or_unknown_video_has_no_estimate(simulator: YouTubeSimulator) -> None:
    deleted, unknown, fine = video_ids(3, seed=4)
    simulator.config = dataclasses.replace(simulator.config, votes_deleted=frozenset({deleted}),
                                           deleted=frozenset({unknown}))

    async def fetch_all() -> tuple[list[str | None], DislikeMeter]:
        meter = DislikeMeter()
        async with make_client() as http:
            client = DislikeClient(http, base_url=simulator.url, timeout=2.0, attempts=2,
                                   max_wait=0.1, meter=meter)
            return [await client.dislikes(v) for v in (deleted, unknown, fine)], meter

    values, meter = asyncio.run(fetch_all())
    assert values == [None, None, str(expected_dislikes(fine))]
    assert (meter.fetched, meter.no_value, meter.failed) == (1, 2, 0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def test_the_token_bucket_spreads_requests_over_the_minute_and_stops_at_the_daily_budget() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5, 12, clock=clock, sleep=clock.sleep)

    async def take(n: int) -> list[bool]:
        return [await bucket.take() for _ in range(n)]

    assert asyncio.run(take(5)) == [True] * 5 and clock.now == 1_000.0  # a burst of one minute's worth
    assert asyncio.run(take(7)) == [True] * 7
    assert clock.now == pytest.approx(1_000.0 + 7 * 12.0)  # then one every 12 s
    assert asyncio.run(take(3)) == [False] * 3 and bucket.taken == 12


def test_the_redis_limiter_is_shared_and_counts_per_minute_and_per_day(redis_client: redis.Redis) -> None:
    clock = FakeClock()
    clock.now = 1_800_000_000.0  # on a minute boundary
    first = RedisWindowLimiter(redis_client, 3, 5, clock=clock)
    second = RedisWindowLimiter(redis_client, 3, 5, clock=clock)
    verdicts = [first.acquire(), second.acquire(), first.acquire(), second.acquire()]
    assert verdicts == ["ok", "ok", "ok", "minute"]
    clock.now += 60
    assert [first.acquire(), second.acquire(), first.acquire()] == ["ok", "ok", "day"]
    state = first.state()
    assert (state.used_today, state.per_day, state.used_this_minute) == (5, 5, 2)
