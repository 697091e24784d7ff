"""Freshness tiers and the quota plan, driven with a frozen clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from worker.refresh.scheduler import DuePost, due_posts, plan
from worker.settings import Settings
from worker.site.state import SiteState

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC).timestamp()
HOUR, DAY = 3_600.0, 86_400.0


def write_post(site: Path, name: str, vid: str, uploaded: str, extra: str = "") -> str:
    rel = f"_posts/{name}.md"
    (site / rel).write_text(f'---\nvid_id: "{vid}"\nvid_date: "{uploaded}"\n{extra}---\n')
    return rel


@pytest.fixture
def tiered_site(tmp_path: Path) -> Path:
    (tmp_path / "_posts").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    ("uploaded", "extra", "checked_ago", "due", "tier"),
    [
        ("2026-11-23T12:00:00Z", "", 2 * HOUR, True, "new"),
        ("2026-11-23T12:00:00Z", "", 0.5 * HOUR, False, "new"),
        ("2026-11-10T12:00:00Z", "", 2 * HOUR, False, "recent"),
        ("2026-11-10T12:00:00Z", "", 25 * HOUR, True, "recent"),
        ("2020-01-01T00:00:00Z", "", 6 * DAY, False, "old"),
        ("2020-01-01T00:00:00Z", "", 8 * DAY, True, "old"),
        ("2020-01-01T00:00:00Z", 'status: "unavailable"\n', 8 * DAY, False, "unavailable"),
        ("2020-01-01T00:00:00Z", 'status: "unavailable"\n', 31 * DAY, True, "unavailable"),
        ("2026-11-23T12:00:00Z", "", None, True, "new"),
    ],
)
def test_a_post_is_due_when_its_tier_interval_has_passed(
        tiered_site: Path, uploaded: str, extra: str, checked_ago: float | None, due: bool, tier: str,
) -> None:
    rel = write_post(tiered_site, "p", "QkqV7TrhN-c", uploaded, extra)
    with SiteState(tiered_site) as state:
        if checked_ago is not None:
            state.mark_checked([(rel, "QkqV7TrhN-c")], NOW - checked_ago)
        found = list(due_posts(tiered_site, Settings(), state, NOW))
    assert [d.tier for d in found] == ([tier] if due else [])


def test_when_quota_is_short_the_longest_unrefreshed_go_first() -> None:
    due = [DuePost(f"_posts/{n}.md", f"vid{n:08d}", "old", checked_at=float(1000 - n)) for n in range(120)]
    result = plan(due, units_left=2)
    assert result.units_needed == 3 and result.units_left == 2
    assert len(result.chosen) == 100 and result.waiting == 20
    assert min(d.checked_at for d in result.chosen) == 881.0
    assert max(d.checked_at for d in result.chosen) == 980.0  # the 20 most recent wait


def test_posts_sharing_a_video_cost_one_id() -> None:
    due = [DuePost(f"_posts/{n}.md", "QkqV7TrhN-c", "old", 0.0) for n in range(80)]
    result = plan(due, units_left=1)
    assert len(result.chosen) == 80 and result.units_needed == 1


def test_tiers_are_configurable(tiered_site: Path) -> None:
    rel = write_post(tiered_site, "p", "QkqV7TrhN-c", "2020-01-01T00:00:00Z")
    with SiteState(tiered_site) as state:
        state.mark_checked([(rel, "QkqV7TrhN-c")], NOW - 2 * DAY)
        weekly = list(due_posts(tiered_site, Settings(), state, NOW))
        daily = list(due_posts(tiered_site, Settings().with_values(tier_old_every="1d"), state, NOW))
    assert weekly == [] and [d.path for d in daily] == [rel]
