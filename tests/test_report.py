"""`postrefresh report`: the data it embeds, and the page as a real headless Chromium draws it."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.gen_posts import generate_site
from tests.conftest import SEEDS, CliResult
from worker.frontmatter.document import read_front_matter, split_post
from worker.outputs.report.collect import SERIAL_BELOW, collect, down_sample, summarise
from worker.outputs.report.page import sparkline
from worker.outputs.site_data import build_summary
from worker.settings import Settings, SiteSettings, load_settings
from worker.simulator.server import YouTubeSimulator
from worker.simulator.truth import expected_fields
from worker.site.history import number_series, window_gain
from worker.site.state import SiteState
from worker.times import parse_time, utc_stamp

pytestmark = pytest.mark.timeout(120)
Cli = Callable[..., CliResult]
GONE = "QkqV7TrhN-c"
KREMLIN = "_posts/2022-04-13-kremlin-admits-significant-losses.md"
BROKEN = "_posts/2023-06-01-broken.md"
HOSTILE_TITLE = "</script><script>document.title='pwned'</script><b>bold?</b>"
DATA = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.S)


def front(path: Path) -> dict[str, object]:
    return read_front_matter(split_post(path.read_bytes()).front_text()).mapping


def build_history(cli: Cli, site: Path, sim: YouTubeSimulator) -> None:
    """Three runs (epochs 0-2) with one video deleted after the first, and one broken post."""
    (site / BROKEN).write_text("---\ntitle: [unclosed\nvid_id: \"abcdefghijk\"\n---\nbody\n")
    post = site / "_posts/2023-02-11-rock-climbing-for-beginners.md"
    post.write_text(re.sub(r'(?m)^title: .*$', lambda _: f"title: {json.dumps(HOSTILE_TITLE)}",
                           post.read_text(), count=1))
    for epoch in range(3):
        sim.config = dataclasses.replace(
            sim.config, epoch=epoch, deleted=frozenset({GONE} if epoch else set()))
        assert cli("run", "--site", str(site), "--no-thumbnails").code == 1  # the broken post


def embedded(page: Path) -> dict[str, object]:
    match = DATA.search(page.read_text(encoding="utf-8"))
    assert match is not None
    data: dict[str, object] = json.loads(match.group(1))
    return data


def seed_videos() -> list[Path]:
    posts = sorted(p for p in (SEEDS / "_posts").rglob("*") if p.suffix in (".md", ".markdown"))
    return [path for path in posts if "vid_id" in front(path)]


def expected_gains(site: Path) -> list[tuple[str, int]]:
    """(vid_id, views now - views at the first run) of every post that gained, largest first.

    The seeds' own counts are of their `date`, years before the window: no baseline.
    """
    gains = []
    for seed in seed_videos():
        vid = str(front(seed)["vid_id"])
        last_epoch = 0 if vid == GONE else 2
        now = int(expected_fields(vid, last_epoch)["statistics.viewCount"])
        base = int(expected_fields(vid, 0)["statistics.viewCount"])
        if now > base:
            gains.append((vid, now - base))
    return sorted(gains, key=lambda item: (-item[1], item[0]))


def test_gain_is_latest_minus_the_last_value_at_or_before_the_window_start() -> None:
    series = [(100, 10), (200, 15), (300, 40)]
    assert window_gain(series, now=350, window=100) == (25, 200)
    assert window_gain(series, now=300, window=100) == (25, 200)
    assert window_gain(series, now=1000, window=950) == (30, 100)  # nothing older: from the first point
    assert window_gain([], now=10, window=5) is None and window_gain([(5, 7)], now=10, window=5) == (0, 5)


def test_a_baseline_over_a_window_older_than_the_start_is_none() -> None:
    series = [(0, 1000), (1000, 5000), (1010, 5030)]  # an old post's `date`, then two runs
    assert window_gain(series, now=1010, window=100) == (30, 1000)  # the gain since the first run
    assert window_gain(series[:2], now=1000, window=100) == (0, 1000)  # a first refresh gains nothing
    assert window_gain(series[:1], now=1000, window=100) is None  # not observed lately


def test_report_and_summary_json_agree_on_a_gain_whose_history_straddles_the_window_start(
        tmp_path: Path) -> None:
    now = parse_time("2026-12-01T12:00:00Z") or 0.0
    day = 86400
    posts = tmp_path / "_posts"
    posts.mkdir()
    (posts / "2026-01-01-straddle.md").write_text(
        '---\ntitle: "Straddle"\nvid_id: "abcdefghijk"\ndate: 2026-01-01\n'
        f'viewcount: "200"\nrefreshed_at: "{utc_stamp(now)}"\nhistory:\n'
        f'  - {{at: "{utc_stamp(now - 10 * day)}", viewcount: "100"}}\n'
        f'  - {{at: "{utc_stamp(now - 3 * day)}", viewcount: "150"}}\n---\nbody\n')
    settings = Settings().with_values(site=tmp_path)
    video = summarise(tmp_path, settings.site, "_posts/2026-01-01-straddle.md", "viewcount", now)
    summary = build_summary(tmp_path, settings, datetime.fromtimestamp(now, UTC))
    assert not isinstance(video, tuple) and video is not None
    [trending] = summary["trending"]
    assert video.gains[0] == trending["gain"] == 100  # from the point 10 days ago, not the one 3 days ago
    assert trending["since"] == utc_stamp(now - 10 * day)


def test_series_parses_iso_times_and_skips_what_it_cannot_read() -> None:
    points = [("2022-04-13T13:25:55+03:00", "viewcount", "10"), ("2026-11-24T21:49:14Z", "viewcount", "30"),
              ("yesterday", "viewcount", "20"), ("2023-01-01", "viewcount", ""),
              ("2023-01-01", "likeCount", "5"), ("2023-01-02", "viewcount", "\u00b2")]  # isdigit, not int
    first, last = parse_time("2022-04-13T10:25:55Z"), parse_time("2026-11-24T21:49:14Z")
    assert first and last and number_series(points, "viewcount") == [(int(first), 10), (int(last), 30)]
    assert parse_time("2022-04-13 13:25:55 +0300") == parse_time("2022-04-13T10:25:55Z")


def test_down_sampling_keeps_at_most_60_points_with_both_ends() -> None:
    series = [(t, t * 2) for t in range(1000)]
    sampled = down_sample(series)
    assert len(sampled) == 60 and sampled[0] == series[0] and sampled[-1] == series[-1]
    assert down_sample(series[:5]) == series[:5]
    assert "<polyline" in sparkline([1, 5, 2, 9]) and "<polyline" not in sparkline([])


def test_report_embeds_risers_unavailable_quota_and_failed_posts(
        cli: Cli, site: Path, sim: YouTubeSimulator, tmp_path: Path) -> None:
    build_history(cli, site, sim)
    out = tmp_path / "report.html"
    result = cli("report", "--site", str(site), "--out", str(out))
    assert result.code == 1, result.err  # the broken post, one line
    [line] = result.err.splitlines()
    assert line.startswith(f"postrefresh: bad post {BROKEN}: ") and "invalid YAML" in line
    data = embedded(out)
    videos = data["videos"]
    assert isinstance(videos, list) and len(videos) == len(seed_videos())
    risers = data["risers"]
    assert isinstance(risers, dict)
    for days in ("7", "30"):
        got = sorted(((r["vid_id"], r["gain"]) for r in risers[days]), key=lambda i: (-i[1], i[0]))
        assert got == expected_gains(site)
    unavailable = data["unavailable"]
    assert isinstance(unavailable, list) and [u["vid_id"] for u in unavailable] == [GONE]
    assert unavailable[0]["at"] == front(site / KREMLIN)["refreshed_at"]
    with SiteState(site) as state:
        days = state.quota_days()
    assert data["quota"] == [{"day": d, "calls": u, "units": u} for d, u in days] and days[-1][1] >= 3
    problems = data["problems"]
    assert isinstance(problems, list) and [p["path"] for p in problems] == [BROKEN]
    assert "invalid YAML" in problems[0]["reason"]
    assert data["unreadable"] == 1  # the broken post, read again for the report
    assert [p["path"] for p in data["unreadable_posts"]] == [BROKEN]  # type: ignore[attr-defined]


def test_only_a_full_run_replaces_the_failed_posts(cli: Cli, site: Path, sim: YouTubeSimulator) -> None:
    build_history(cli, site, sim)
    good = site / "_posts/2023-01-15-homemade-pasta-three-ways.md"
    assert cli("run", "--site", str(site), "--no-thumbnails", str(good)).code == 0
    assert cli("run", "--site", str(site), "--no-thumbnails", "--dry-run").code == 1
    (site / BROKEN).unlink()
    with SiteState(site) as state:
        assert [p for p, _, _ in state.problems()] == [BROKEN]
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    with SiteState(site) as state:
        assert state.problems() == []


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000", "--window-size=1280,1600"]


def chromium(page: Path, profile: Path, *action: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is missing: `bash scripts/test` installs Debian's chromium package")
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *action, page.as_uri()],
                          capture_output=True, text=True, timeout=60, check=True)


def script_errors(stderr: str, page: Path) -> list[str]:
    # Chromium logs every console message of the page as `INFO:CONSOLE:<line>] "<text>", source:
    # <url>`, at INFO whatever the console level, so the level cannot tell errors apart. The
    # report logs nothing on purpose: any console line from the page, or an "Uncaught"
    # anywhere, is an error. Chromium's own noise (dbus, GPU) never names the page.
    return [line for line in stderr.splitlines()
            if "Uncaught" in line or ("CONSOLE" in line and page.as_uri() in line)]


def test_chromium_renders_the_page_with_rows_and_sparklines_and_no_script_error(
        cli: Cli, site: Path, sim: YouTubeSimulator, tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>notDefined();</script></body></html>")
    control = chromium(broken, tmp_path / "profile0", "--dump-dom")
    assert script_errors(control.stderr, broken), "the console check no longer sees script errors"
    build_history(cli, site, sim)
    page = tmp_path / "report.html"
    assert cli("report", "--site", str(site), "--out", str(page)).code == 1  # the broken post
    dom = chromium(page, tmp_path / "profile1", "--dump-dom")
    loads = re.compile(r"<(?:link|img|iframe|object|embed)\b|\bsrc\s*=|url\(|@import", re.I)
    assert not loads.search(page.read_text(encoding="utf-8") + dom.stdout)  # nothing fetched: no request
    assert script_errors(dom.stderr, page) == []
    body = dom.stdout.split('id="videos-body">', 1)[1].split("</tbody>", 1)[0]
    assert body.count("<tr>") == len(embedded(page)["videos"])  # type: ignore[arg-type]
    points = re.findall(r'<polyline points="([^"]*)"', body)
    assert len(points) == body.count("<tr>") and all(p.strip() for p in points)
    shown = re.sub(r"<script.*?</script>", "", dom.stdout, flags=re.S)  # the page less its scripts
    assert "bold?" in body and "<b>bold?</b>" not in shown and "<script" not in shown
    assert "<title>postrefresh report: site</title>" in dom.stdout  # the hostile title ran nothing
    assert re.search(r"page 1 of 1 \(\d+ of \d+ videos\)", dom.stdout)
    shot = tmp_path / "report.png"
    drawn = chromium(page, tmp_path / "profile2", f"--screenshot={shot}")
    assert script_errors(drawn.stderr, page) == []
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000


def test_worker_processes_collect_the_same_data_as_one_process(tmp_path: Path) -> None:
    site = tmp_path / "big"
    generate_site(site, SERIAL_BELOW + 100, seed=3)
    settings = load_settings({"site": str(site)}, {}, None)
    serial, parallel = collect(settings, now=1e9, jobs=1), collect(settings, now=1e9, jobs=2)
    assert len(parallel.rows) == SERIAL_BELOW + 100 and parallel == serial


def test_an_output_folder_that_does_not_exist_is_one_line_before_any_reading(
        cli: Cli, site: Path, tmp_path: Path) -> None:
    result = cli("report", "--site", str(site), "--out", str(tmp_path / "nope" / "report.html"))
    assert result.code == 2 and "does not exist" in result.err and not list(tmp_path.rglob("*.tmp"))


def test_a_broken_history_csv_makes_its_post_unreadable_not_the_report(site: Path) -> None:
    (site / "_data/postrefresh").mkdir(parents=True)
    (site / "_data/postrefresh/QkqV7TrhN-c.csv").write_text("at,field,value\nonly,two\n")
    result = summarise(site, SiteSettings(), KREMLIN, "viewcount", 1e9)
    assert isinstance(result, tuple) and result[0] == KREMLIN and "CSV" in result[1]
