"""`postrefresh run` end to end: real files, the real simulator over loopback, the real CLI."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.gen_posts import generate_site
from tests.conftest import CliResult, snapshot
from tests.simulator_fixtures import API_KEY
from worker.frontmatter.document import read_front_matter, split_post
from worker.frontmatter.editor import normalise
from worker.simulator.server import YouTubeSimulator
from worker.simulator.truth import expected_fields
from worker.site.state import SiteState

pytestmark = pytest.mark.timeout(60)
Cli = Callable[..., CliResult]


def mapping(path: Path) -> dict[str, object]:
    return read_front_matter(split_post(path.read_bytes()).front_text()).mapping


def video_posts(site: Path) -> list[Path]:
    posts = sorted(site.glob("_posts/**/*.md")) + sorted(site.glob("_posts/**/*.markdown"))
    return [p for p in posts if "vid_id" in mapping(p)]


def assert_matches_truth(post: Path, epoch: int = 0) -> None:
    values = mapping(post)
    truth = expected_fields(str(values["vid_id"]), epoch)
    assert normalise(values["viewcount"]) == truth["statistics.viewCount"], post.name
    for key in ("likeCount", "commentCount"):
        if f"statistics.{key}" in truth:
            assert normalise(values[key]) == truth[f"statistics.{key}"], post.name
        else:
            assert values.get(key, "") == "", post.name  # hidden: unknown, never a frozen number


def test_run_refreshes_every_video_post_then_a_second_run_writes_nothing(cli: Cli, site: Path,
                                                                          sim: YouTubeSimulator) -> None:
    result = cli("run", "--site", str(site))
    assert result.code == 0, result.err
    for post in video_posts(site):
        assert_matches_truth(post)
    assert "refreshed: 12" in result.out
    ids = {mapping(p)["vid_id"] for p in video_posts(site)}
    assert sim.counters.ids_requested == [sorted(ids)] or len(sim.counters.ids_requested) == 1
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in site.rglob("*") if p.is_file()
              and ".postrefresh" not in p.parts}
    again = cli("run", "--site", str(site))
    assert again.code == 0 and "refreshed: 0  unchanged: 12" in again.out
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in before}
    assert after == before


def test_a_run_resolves_each_posts_path_once_when_it_reads_it(cli: Cli, site: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def resolved_again(*_: object) -> Path:
        raise AssertionError("the writer resolved a path the run had already checked")

    monkeypatch.setattr("worker.refresh.write.resolve_in_site", resolved_again)
    result = cli("run", "--site", str(site))
    assert result.code == 0 and "refreshed: 12" in result.out, result.err
    for post in video_posts(site):
        assert_matches_truth(post)


def test_a_shared_vid_id_is_asked_once_and_both_posts_are_refreshed(cli: Cli, site: Path,
                                                                   sim: YouTubeSimulator) -> None:
    assert cli("run", "--site", str(site)).code == 0
    asked = [vid for batch in sim.counters.ids_requested for vid in batch]
    assert asked.count("Tq7xK2mWp9s") == 1
    sharing = [p for p in video_posts(site) if mapping(p)["vid_id"] == "Tq7xK2mWp9s"]
    assert len(sharing) == 2
    for post in sharing:
        assert_matches_truth(post)


def test_dry_run_prints_the_diff_and_writes_nothing(cli: Cli, site: Path) -> None:
    before = snapshot(site)
    result = cli("run", "--site", str(site), "--dry-run")
    assert result.code == 0
    assert snapshot(site) == before
    assert "+++ b/_posts/2022-04-13-kremlin-admits-significant-losses.md" in result.out
    assert '-viewcount: "542436"' in result.out


def test_only_the_given_paths_are_refreshed(cli: Cli, site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(site)
    before = snapshot(site)
    target = "_posts/2022-04-13-kremlin-admits-significant-losses.md"
    assert cli("run", "--site", ".", "--no-thumbnails", target).code == 0
    changed = {k for k, v in snapshot(site).items() if before.get(k) != v}
    assert changed == {target, "_data/postrefresh/summary.json"}  # the summary follows every run


def test_stale_skips_posts_checked_recently_without_calling_the_api(cli: Cli, site: Path,
                                                                    sim: YouTubeSimulator) -> None:
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    calls = sim.counters.api_requests
    result = cli("run", "--site", str(site), "--stale", "7d", "--json")
    summary = json.loads(result.out)
    assert result.code == 0 and summary["fresh_skipped"] == 12 and summary["api_calls"] == 0
    assert sim.counters.api_requests == calls


@pytest.mark.parametrize("faults", [("500", "503", "429", "drop", "slow"),
                                    ("malformed", "foreign_item", "bad_stat", "503")])
def test_thirty_percent_faults_end_right_within_one_and_a_half_times_the_minimum(
        cli: Cli, tmp_path: Path, sim: YouTubeSimulator, faults: tuple[str, ...]) -> None:
    site = tmp_path / "big"
    ids = generate_site(site, 600, seed=3)
    sim.config = dataclasses.replace(sim.config, fault_rate=0.3, faults=faults)
    result = cli("run", "--site", str(site), "--no-thumbnails", "--json")
    assert result.code == 0, result.err
    minimum = math.ceil(len(set(ids)) / 50)
    assert sim.counters.api_ok <= 1.5 * minimum
    summary = json.loads(result.out)
    assert summary["refreshed"] == 600 and summary["quota_units"] <= sim.counters.units_used
    for post in video_posts(site):
        assert_matches_truth(post)


def test_quota_exhausted_mid_run_stops_at_once_exits_75_and_a_later_run_finishes(
        cli: Cli, tmp_path: Path, sim: YouTubeSimulator) -> None:
    site = tmp_path / "big"
    generate_site(site, 400, seed=4)
    sim.config = dataclasses.replace(sim.config, quota_units=3)
    result = cli("run", "--site", str(site), "--no-thumbnails", "--json")
    assert result.code == 75
    summary = json.loads(result.out)
    assert summary["refreshed"] == 150 and "quota" in summary["stopped_because"]
    assert sim.counters.api_requests <= 3 + 8  # at most one refused call per concurrent slot
    for post in video_posts(site):
        assert "status" not in mapping(post)  # nothing marked unavailable by mistake
    sim.config = dataclasses.replace(sim.config, quota_units=None)
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    for post in video_posts(site):
        assert_matches_truth(post)


def test_max_units_stops_the_run_after_that_many_calls(cli: Cli, tmp_path: Path,
                                                      sim: YouTubeSimulator) -> None:
    site = tmp_path / "big"
    generate_site(site, 200, seed=5)
    result = cli("run", "--site", str(site), "--no-thumbnails", "--max-units", "2", "--json")
    assert result.code == 75 and json.loads(result.out)["quota_units"] == 2
    with SiteState(site) as state:
        assert sum(state.units_on(day) for day in _days()) == 2


def _days() -> list[str]:
    from datetime import UTC, datetime, timedelta

    from worker.times import quota_day

    now = datetime.now(UTC)
    return sorted({quota_day(now + timedelta(hours=h)) for h in (-24, 0, 24)})


def test_a_rejected_key_exits_2_and_touches_no_post(cli: Cli, site: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(site)
    monkeypatch.setenv("YOUTUBE_API_KEY", "wrong-key")
    result = cli("run", "--site", str(site))
    assert result.code == 2 and "key" in result.out.lower()
    assert snapshot(site) == before


def test_a_missing_key_exits_2_before_touching_any_file(cli: Cli, site: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YOUTUBE_API_KEY")
    result = cli("run", "--site", str(site))
    assert result.code == 2 and "YOUTUBE_API_KEY" in result.err
    assert not (site / ".postrefresh").exists()


def test_an_unknown_site_exits_2(cli: Cli, tmp_path: Path) -> None:
    result = cli("run", "--site", str(tmp_path / "nope"))
    assert result.code == 2 and "site directory not found" in result.err


def test_a_second_run_on_the_same_site_is_refused_while_one_holds_the_lock(cli: Cli, site: Path) -> None:
    with SiteState(site) as state, state.run_lock():
        result = cli("run", "--site", str(site))
    assert result.code == 75 and "another postrefresh run" in result.err


def test_a_video_gone_twice_gets_a_status_keeps_its_stats_and_loses_it_when_back(
        cli: Cli, site: Path, sim: YouTubeSimulator) -> None:
    post = site / "_posts/2022-04-13-kremlin-admits-significant-losses.md"
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    refreshed = mapping(post)
    sim.config = dataclasses.replace(sim.config, deleted=frozenset({"QkqV7TrhN-c"}), epoch=1)
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    assert "status" not in mapping(post)  # one absence is not enough
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    gone = mapping(post)
    assert gone["status"] == "unavailable"
    assert gone["viewcount"] == refreshed["viewcount"] and gone["likeCount"] == refreshed["likeCount"]
    sim.config = dataclasses.replace(sim.config, deleted=frozenset())
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    back = mapping(post)
    assert "status" not in back
    assert_matches_truth(post, epoch=1)


def test_the_key_never_appears_in_output_logs_urls_or_files(cli: Cli, site: Path, sim: YouTubeSimulator,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    sim.config = dataclasses.replace(sim.config, fault_rate=0.3, faults=("500", "429", "drop"))
    result = cli("run", "--site", str(site), "-vv")
    monkey_bad = cli("run", "--site", str(site), "--dry-run")
    assert result.code == 0 and monkey_bad.code == 0
    text = result.out + result.err + monkey_bad.out + monkey_bad.err + caplog.text
    assert API_KEY not in text
    assert sim.counters.key_in_url_requests == 0
    for path in site.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


def test_history_rebuilds_the_series_across_runs(cli: Cli, site: Path, sim: YouTubeSimulator) -> None:
    for epoch in range(3):
        sim.config = dataclasses.replace(sim.config, epoch=epoch)
        assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    result = cli("history", "--site", str(site), "QkqV7TrhN-c", "--json")
    points = json.loads(result.out)["points"]
    views = [p["value"] for p in points if p["field"] == "viewcount"]
    expected = [expected_fields("QkqV7TrhN-c", e)["statistics.viewCount"] for e in range(3)]
    assert views == ["542436", *expected]
    table = cli("history", "--site", str(site), "QkqV7TrhN-c")
    assert table.code == 0 and "viewcount" in table.out.splitlines()[0]


def test_history_overflow_and_data_mode_go_to_csv_and_nothing_is_lost(
        cli: Cli, site: Path, sim: YouTubeSimulator) -> None:
    (site / "_postrefresh.toml").write_text("history_keep = 2\n")
    for epoch in range(4):
        sim.config = dataclasses.replace(sim.config, epoch=epoch)
        assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    post = site / "_posts/2022-04-13-kremlin-admits-significant-losses.md"
    assert len(mapping(post)["history"]) == 2  # type: ignore[arg-type]
    csv_rows = (site / "_data/postrefresh/QkqV7TrhN-c.csv").read_text().splitlines()
    assert csv_rows[0] == "at,field,value" and any(",viewcount,542436" in r for r in csv_rows)
    views = [p["value"] for p in json.loads(cli("history", "--site", str(site), "QkqV7TrhN-c",
                                                "--json").out)["points"] if p["field"] == "viewcount"]
    assert len(views) == 5


def test_data_mode_keeps_history_out_of_the_front_matter(cli: Cli, site: Path, sim: YouTubeSimulator) -> None:
    (site / "_postrefresh.toml").write_text('history_mode = "data"\n')
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    post = site / "_posts/2022-04-13-kremlin-admits-significant-losses.md"
    assert "history" not in mapping(post)
    assert ",viewcount,542436" in (site / "_data/postrefresh/QkqV7TrhN-c.csv").read_text()


def test_thumbnails_are_stored_then_revalidated_without_rewrite(cli: Cli, site: Path,
                                                                sim: YouTubeSimulator) -> None:
    assert cli("run", "--site", str(site)).code == 0
    thumb = site / "assets/thumbnails/QkqV7TrhN-c.jpg"
    assert thumb.read_bytes().startswith(b"\xff\xd8\xff")
    stamp = thumb.stat().st_mtime_ns
    result = cli("run", "--site", str(site), "--json")
    assert json.loads(result.out)["thumbnails_unchanged"] == 11
    assert thumb.stat().st_mtime_ns == stamp
    assert sim.counters.thumb_304 == 11


def test_state_folder_is_ignored_by_git(cli: Cli, site: Path) -> None:
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    assert (site / ".postrefresh/.gitignore").read_text() == "*\n"
    assert os.path.exists(site / ".postrefresh/state.db")


def test_sigterm_finishes_the_writes_in_progress_and_exits_130(tmp_path: Path, sim: YouTubeSimulator) -> None:
    import signal
    import subprocess
    import sys
    import time

    site = tmp_path / "big"
    generate_site(site, 2_000, seed=9)
    pristine = {p.name: p.read_bytes() for p in (site / "_posts").iterdir()}
    sim.config = dataclasses.replace(sim.config, latency=0.3)
    env = {**os.environ, "YOUTUBE_API_KEY": API_KEY, "YOUTUBE_API_URL": f"{sim.url}/youtube/v3",
           "YOUTUBE_THUMBNAIL_URL": sim.url}
    proc = subprocess.Popen([sys.executable, "-m", "worker", "run", "--site", str(site), "--no-thumbnails",
                             "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while sim.counters.api_ok < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130
    summary = json.loads(out)
    assert summary["interrupted"] and 0 < summary["refreshed"] < 2_000
    assert not list(site.rglob(".postrefresh-*.tmp"))
    changed = 0
    for post in (site / "_posts").iterdir():
        data = post.read_bytes()
        if data != pristine[post.name]:
            changed += 1
            assert_matches_truth(post)
    assert changed == summary["refreshed"]


def test_temp_files_left_by_a_killed_writer_are_swept_at_start(cli: Cli, site: Path) -> None:
    dead = site / "_posts" / ".postrefresh-999999999-dead1234.tmp"
    dead.write_bytes(b"half a post")
    old = site / "_posts" / ".postrefresh-x.tmp"
    old.write_bytes(b"half a post")
    os.utime(old, (1_000_000_000, 1_000_000_000))
    fresh = site / "_posts" / f".postrefresh-{os.getpid()}-live5678.tmp"
    fresh.write_bytes(b"another writer's file, being written now")
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    assert not old.exists() and not dead.exists() and fresh.exists()


def test_a_rejected_or_failing_key_never_shows_in_errors_or_debug_logs(
        cli: Cli, site: Path, sim: YouTubeSimulator, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    secret = "AIzaSy-recognisable-secret-0123456789"
    monkeypatch.setenv("YOUTUBE_API_KEY", secret)
    rejected = cli("run", "--site", str(site), "-vv")
    sim.config = dataclasses.replace(sim.config, api_keys=frozenset({secret}), fault_rate=1.0,
                                     faults=("500",))
    unreachable = cli("run", "--site", str(site), "-vv", "--json")
    assert rejected.code == 2 and unreachable.code == 75
    everything = rejected.out + rejected.err + unreachable.out + unreachable.err + caplog.text
    assert secret not in everything
    assert sim.counters.key_in_url_requests == 0


def test_rewrite_image_points_image_at_the_local_thumbnail(cli: Cli, site: Path) -> None:
    (site / "_postrefresh.toml").write_text("rewrite_image = true\n")
    assert cli("run", "--site", str(site)).code == 0
    post = site / "_posts/2022-04-13-kremlin-admits-significant-losses.md"
    assert mapping(post)["image"] == "/assets/thumbnails/QkqV7TrhN-c.jpg"
    assert b'image: "\\/assets\\/thumbnails\\/QkqV7TrhN-c.jpg"' in post.read_bytes()
    assert (site / "assets/thumbnails/QkqV7TrhN-c.jpg").exists()
