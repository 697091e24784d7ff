"""Milestones in summary.json: round numbers of views passed lately, dated by the history."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult
from worker.outputs.milestones import latest_milestone
from worker.settings import SiteSettings
from worker.simulator.server import YouTubeSimulator
from worker.simulator.truth import expected_fields
from worker.site.paths import summary_file

pytestmark = pytest.mark.timeout(60)
Cli = Callable[..., CliResult]
DAY = 86_400.0
POST = "_posts/2022-04-13-kremlin-admits-significant-losses.md"
VID = "QkqV7TrhN-c"
SUMMARY_PATH = summary_file(SiteSettings().data_dir)


@pytest.mark.parametrize(("points", "found"), [
    ([(0, 9_000), (DAY, 12_000)], (10_000, DAY)),
    ([(0, 99_000), (DAY, 1_200_000)], (1_000_000, DAY)),  # the highest one passed
    ([(0, 9_000), (30 * DAY, 12_000)], None),  # a month between: when it passed is not known
    ([(0, 9_000), (DAY, 11_000), (2 * DAY, 9_500), (3 * DAY, 10_500)], (10_000, DAY)),  # passed once
    ([(DAY, 12_000), (0, 9_000)], (10_000, DAY)),  # any order
    ([(0, 12_000), (DAY, 13_000)], None),
])
def test_a_milestone_is_the_highest_round_number_passed_between_two_close_observations(
        points: list[tuple[float, int]], found: tuple[int, float] | None) -> None:
    assert latest_milestone(points, 0, 7 * DAY) == found


def test_a_milestone_shows_from_the_run_that_first_saw_it_for_the_whole_window(
        cli: Cli, site: Path, sim: YouTubeSimulator) -> None:
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    summary = json.loads((site / SUMMARY_PATH).read_text())
    assert summary["milestones"] == []  # a first refresh of posts from 2022 dates no passing
    post = site / POST
    post.write_bytes(re.sub(rb'viewcount: "\d+"', b'viewcount: "999"', post.read_bytes()))
    sim.config = dataclasses.replace(sim.config, epoch=1)
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    [passed] = json.loads((site / SUMMARY_PATH).read_text())["milestones"]
    stamp = re.search(rb'^refreshed_at: "([^"]+)"', post.read_bytes(), re.M)
    assert stamp is not None
    assert passed["vid_id"] == VID and passed["milestone"] == 1_000_000
    assert passed["passed_at"] == stamp.group(1).decode()
    assert passed["views"] == int(expected_fields(VID, 1)["statistics.viewCount"])
    sim.config = dataclasses.replace(sim.config, epoch=2)
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    [still] = json.loads((site / SUMMARY_PATH).read_text())["milestones"]
    assert still["passed_at"] == passed["passed_at"]  # not "since the previous run"
