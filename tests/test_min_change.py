"""`min_change` keeps a published site's git history quiet: small moves wait, drift adds up.

End to end against the simulator, whose views grow by a fixed step per epoch for each video.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import FAST_CONFIG, CliResult
from worker.errors import ConfigError
from worker.refresh.changes import held_back
from worker.settings import MinChange, Settings, load_settings
from worker.simulator.server import YouTubeSimulator
from worker.simulator.truth import expected_fields
from worker.times import parse_time

pytestmark = pytest.mark.timeout(60)
Cli = Callable[..., CliResult]
POST = "_posts/2022-04-13-kremlin-admits-significant-losses.md"
VID = "QkqV7TrhN-c"


def views(epoch: int) -> int:
    return int(expected_fields(VID, epoch)["statistics.viewCount"])


def config(tmp_path: Path, lines: str) -> str:
    path = tmp_path / "quiet.toml"
    path.write_text(FAST_CONFIG + lines)
    return str(path)


def run(cli: Cli, site: Path, sim: YouTubeSimulator, epoch: int, settings: str, *flags: str) -> dict:
    sim.config = dataclasses.replace(sim.config, epoch=epoch)
    result = cli("run", "--site", str(site), "--config", settings, "--no-thumbnails", "--json", *flags)
    assert result.code == 0, result.err
    return json.loads(result.out)


def viewcount(site: Path) -> int:
    match = re.search(rb'^viewcount: "(\d+)"', (site / POST).read_bytes(), re.M)
    assert match is not None
    return int(match.group(1))


def test_small_moves_wait_drift_adds_up_and_the_check_still_counts(
        cli: Cli, site: Path, sim: YouTubeSimulator, tmp_path: Path) -> None:
    step = views(1) - views(0)
    settings = config(tmp_path, f'min_change = "{step * 3 // 2}"\n')
    first = run(cli, site, sim, 0, settings)
    assert first["refreshed"] == first["seen"] and viewcount(site) == views(0)  # never refreshed: written
    before = (site / POST).read_bytes()
    small = run(cli, site, sim, 1, settings)
    assert (site / POST).read_bytes() == before  # one step is less than 1.5 steps: left as it is
    assert small["held_by_min_change"] >= 1
    fresh = run(cli, site, sim, 1, settings, "--stale", "1h")
    assert fresh["fresh_skipped"] == fresh["seen"]  # a held post was checked all the same
    run(cli, site, sim, 2, settings)
    assert viewcount(site) == views(2)  # two steps against the value in the post: written
    text = cli("run", "--site", str(site), "--config", settings, "--no-thumbnails")
    held = re.search(r"^left as they are: (\d+) posts moved less than min_change$", text.out, re.M)
    assert text.code == 0 and held is not None and int(held.group(1)) >= 1  # others still drift


def test_a_large_move_and_an_old_write_are_written(cli: Cli, site: Path, sim: YouTubeSimulator,
                                                   tmp_path: Path) -> None:
    settings = config(tmp_path, 'min_change = "1% or 100000000"\nmax_unwritten = "30d"\n')
    run(cli, site, sim, 0, settings)
    post = site / POST
    post.write_bytes(post.read_bytes().replace(f'viewcount: "{views(0)}"'.encode(), b'viewcount: "1000"'))
    run(cli, site, sim, 1, settings)
    assert viewcount(site) == views(1)  # far more than 1%
    data = post.read_bytes()
    stamp = re.search(rb'^refreshed_at: "([^"]+)"', data, re.M)
    assert stamp is not None
    post.write_bytes(data.replace(stamp.group(1), b"2020-01-01T00:00:00Z"))
    run(cli, site, sim, 2, settings)
    assert viewcount(site) == views(2)  # a small move, but the last write is older than max_unwritten


@pytest.mark.parametrize(("text", "parsed"), [
    ("1%", MinChange(share=0.01)), ("500", MinChange(amount=500)), (500, MinChange(amount=500)),
    ("1% or 500", MinChange(0.01, 500)), ("0.5% or 20", MinChange(0.005, 20)), ("off", None),
])
def test_min_change_reads_a_share_an_amount_or_both(text: object, parsed: MinChange | None,
                                                     tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(f"min_change = {json.dumps(text)}\n")
    assert load_settings({}, {}, path).site.min_change == parsed


def test_a_bad_min_change_names_the_file_and_the_forms(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('min_change = "a lot"\n')
    with pytest.raises(ConfigError, match=r's.toml: min_change = .a lot.: must be a share, an amount'):
        load_settings({}, {}, path)


@pytest.mark.parametrize(("changes", "held"), [
    ({"viewcount": "1005"}, True),
    ({"viewcount": "1020"}, False),  # 2% of 1000
    ({"likeCount": ""}, False),  # a count hidden: always written
    ({"status": "unavailable"}, False),
    ({"viewcount": "1005", "title": "filled"}, False),  # a filled field
])
def test_what_is_held_back(changes: dict[str, str | None], held: bool) -> None:
    settings = Settings().with_values(min_change="1%")
    post = {"viewcount": "1000", "likeCount": "50", "refreshed_at": "2026-12-01T00:00:00Z"}
    a_day_later = parse_time("2026-12-02T00:00:00Z")
    assert a_day_later is not None
    assert held_back(post, changes, settings, a_day_later) is held
    assert held_back(post, changes, settings, a_day_later + 30 * 86_400) is False  # max_unwritten
