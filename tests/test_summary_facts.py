"""summary.json from the facts a run already parsed: the same bytes as a full build, no post read twice.

The oracle is the previous version's build (every post read and parsed again after the run),
written out here so the cache is checked against a pass that shares none of its code.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.gen_posts import generate_site
from tests.conftest import CliResult
from worker.errors import PostFormatError
from worker.frontmatter.editor import normalise
from worker.outputs.milestones import latest_milestone
from worker.outputs.site_data import write_summary
from worker.refresh.scheduler import due_posts
from worker.settings import Settings, SiteSettings, load_settings
from worker.simulator.server import YouTubeSimulator
from worker.site import history, posts
from worker.site.paths import SitePaths, display, summary_file
from worker.site.posts import discover, video_posts
from worker.site.state import SiteState
from worker.times import parse_time, utc_stamp

pytestmark = pytest.mark.timeout(60)
Cli = Callable[..., CliResult]
GONE = "QkqV7TrhN-c"
SUMMARY_PATH = summary_file(SiteSettings().data_dir)
SHARED = "Tq7xK2mWp9s"  # two seed posts: a tie in views, broken by path
BAD = "---\ntitle: [unclosed\nvid_id: \"aaaaaaaaaaa\"\n---\nbody\n"


def full_build(site: Path, settings: Settings, now: datetime) -> dict[str, Any]:
    """The previous version's build_summary: every post read and parsed, its history series rebuilt."""
    key = next((k for k, v in settings.site.fields.items() if v == "statistics.viewCount"), "viewcount")
    videos = unavailable = 0
    most: list[tuple[int, str, dict[str, Any]]] = []
    trend: list[tuple[int, str, dict[str, Any]]] = []
    miles: list[tuple[int, str, dict[str, Any]]] = []
    for post in video_posts(site, discover(site, settings.site.posts_globs)):
        videos += 1
        if post.mapping.get("status") == "unavailable":
            unavailable += 1
            continue
        views = number(post.mapping.get(key))
        if views is None:
            continue
        entry = {"vid_id": post.vid_id, "title": history.as_text(post.mapping.get("title")) or "",
                 "path": display(post.path), "views": views,
                 "refreshed_at": history.as_text(post.mapping.get("refreshed_at"))}
        most.append((views, post.path, entry))
        since = (now - timedelta(days=7)).timestamp()
        points = history.series(site, SiteSettings().history_dir, post.vid_id, post.mapping, [key])
        inside = [(moment, at, first)
                  for at, name, value in points
                  if name == key and (moment := parse_time(at)) is not None and moment >= since
                  and (first := number(value)) is not None]
        if inside:
            _, at, first = min(inside)
            if views - first > 0:
                trend.append((views - first, post.path, {**entry, "gain": views - first, "since": at}))
        seen = [(moment, count)
                for at, name, value in points
                if name == key and (moment := parse_time(at)) is not None
                and (count := number(value)) is not None]
        window = settings.site.milestone_days
        passed = latest_milestone(seen, now.timestamp() - window, window)
        if passed is not None:
            miles.append((passed[0], post.path,
                          {**entry, "milestone": passed[0], "passed_at": utc_stamp(passed[1])}))
    top = settings.site.summary_top

    def ranked(items: list[tuple[int, str, dict[str, Any]]]) -> list[dict[str, Any]]:
        best = heapq.nlargest(top, items, key=lambda item: item[:2])
        return [entry for _, _, entry in sorted(best, key=lambda item: (-item[0], item[1]))]

    return {"generated_at": utc_stamp(now), "counts": {"videos": videos, "unavailable": unavailable},
            "most_viewed": ranked(most), "trending": ranked(trend), "milestones": ranked(miles)}


def number(value: Any) -> int | None:
    text = history.as_text(normalise(value))
    return int(text) if text is not None and text.isdigit() else None


def assert_summary_is_the_full_build(site: Path) -> dict[str, Any]:
    written = (site / SUMMARY_PATH).read_bytes()
    now = datetime.fromtimestamp(parse_time(json.loads(written)["generated_at"]) or 0, UTC)
    expected = full_build(site, load_settings({"site": str(site)}, {}), now)
    assert written.decode() == json.dumps(expected, indent=2, ensure_ascii=False) + "\n"
    return expected


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts every file read by the one checked reader, by site-relative path (name of the file)."""
    counted: Counter[str] = Counter()
    real = posts.read_checked

    def counting(path: Path, info: os.stat_result | None = None) -> tuple[bytes, posts.FileIdentity]:
        counted[path.name] += 1
        return real(path, info)

    monkeypatch.setattr(posts, "read_checked", counting)
    yield counted


def edit_views(path: Path, views: str) -> None:
    lines = path.read_bytes().split(b"\n")
    at = next(i for i, line in enumerate(lines) if line.startswith(b"viewcount:"))
    lines[at] = f'viewcount: "{views}"'.encode() + (b"\r" if lines[at].endswith(b"\r") else b"")
    path.write_bytes(b"\n".join(lines))


def names(site: Path) -> list[str]:
    return [Path(rel).name for rel in discover(site, Settings().site.posts_globs)]


def test_the_summary_after_runs_is_the_full_builds_byte_for_byte(cli: Cli, site: Path,
                                                                 sim: YouTubeSimulator) -> None:
    (site / "_postrefresh.toml").write_text("absent_runs = 1\nsummary_top = 4\n")
    (site / "_posts" / "2024-01-01-bad.md").write_text(BAD)
    sim.config = dataclasses.replace(sim.config, deleted=frozenset({GONE}))
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 1  # the bad post
    first = assert_summary_is_the_full_build(site)
    assert first["counts"]["unavailable"] == 1 and first["trending"] == []
    sim.config = dataclasses.replace(sim.config, epoch=1)
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 1
    second = assert_summary_is_the_full_build(site)
    assert second["trending"], "views gained between the runs, from the history"
    shared = [e["path"] for e in second["most_viewed"] if e["vid_id"] == SHARED]
    assert len(shared) in (0, 2) and shared == sorted(shared)


@pytest.mark.parametrize("history_mode", ["frontmatter", "data"])
def test_stale_and_path_runs_and_edits_between_runs_keep_the_summary_exact(
        cli: Cli, site: Path, sim: YouTubeSimulator, history_mode: str, reads: Counter[str]) -> None:
    (site / "_postrefresh.toml").write_text(f'history_mode = "{history_mode}"\n')
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    edited = next(p for p in sorted((site / "_posts").glob("*.md")) if b"viewcount:" in p.read_bytes())
    edit_views(edited, "999999999")  # by hand, between runs: the next summary must show it
    sim.config = dataclasses.replace(sim.config, epoch=1)
    reads.clear()
    assert cli("run", "--site", str(site), "--no-thumbnails", "--stale", "1h").code == 0
    # --stale read none of the video posts; the summary read the edited one, and the run the
    # posts that are not video posts (they have no check time to skip them by)
    other = [p.name for p in (site / "_posts").rglob("*.md") if b"vid_id:" not in p.read_bytes()]
    assert reads == Counter([edited.name, *other]), reads
    summary = assert_summary_is_the_full_build(site)
    assert summary["most_viewed"][0]["views"] == 999999999
    one = next(p for p in sorted((site / "_posts").glob("*.md"))
               if p != edited and b"vid_id" in p.read_bytes())
    assert cli("run", "--site", str(site), "--no-thumbnails", str(one.relative_to(site))).code == 0
    assert_summary_is_the_full_build(site)


def test_a_run_reads_each_post_once_and_its_summary_reads_none(cli: Cli, site: Path,
                                                              reads: Counter[str]) -> None:
    (site / "_posts" / "2024-01-01-bad.md").write_text(BAD)
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 1
    assert (site / SUMMARY_PATH).exists()
    every = names(site)
    # Each post is read once to be fetched; a post to write is read again under its lock by
    # PostWriter (the compare-and-swap against a person's edit), never by the summary.
    assert set(reads) == set(every)
    assert all(reads[name] <= 2 for name in every), reads
    reads.clear()
    assert write_summary(site, Settings().with_values(site=site)) is None
    assert reads == Counter()


def test_the_run_itself_reads_each_post_once_outside_the_locked_write(cli: Cli, site: Path,
                                                                     reads: Counter[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.refresh import write

    locked: Counter[str] = Counter()
    real = write.read_regular

    def counting(path: Path) -> bytes:
        locked[path.name] += 1
        return real(path)

    monkeypatch.setattr(write, "read_regular", counting)
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    video = [n for n in names(site) if b"vid_id:" in next((site / "_posts").rglob(n)).read_bytes()]
    assert {n: reads[n] - locked[n] for n in names(site)} == dict.fromkeys(names(site), 1)
    assert all(locked[n] == 1 for n in video)


def test_a_summary_reads_only_the_posts_that_changed(cli: Cli, site: Path, reads: Counter[str]) -> None:
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    edited = next(p for p in sorted((site / "_posts").glob("*.md")) if b"viewcount:" in p.read_bytes())
    edit_views(edited, "123456789")
    reads.clear()
    settings = load_settings({"site": str(site)}, {})
    assert write_summary(site, settings) is not None  # the Celery scan's entry point
    assert reads == Counter({edited.name: 1})
    assert_summary_is_the_full_build(site)


def test_the_facts_of_posts_deleted_or_renamed_are_forgotten_at_the_next_summary(
        cli: Cli, site: Path) -> None:
    assert cli("run", "--site", str(site), "--no-thumbnails").code == 0
    posts = sorted(p for p in (site / "_posts").rglob("*") if p.is_file())
    posts[0].unlink()
    posts[1].rename(posts[1].with_name("renamed-" + posts[1].name))
    settings = load_settings({"site": str(site)}, {})
    assert write_summary(site, settings) is not None
    now = sorted(p.relative_to(site).as_posix() for p in (site / "_posts").rglob("*") if p.is_file())
    db = sqlite3.connect(site / ".postrefresh" / "state.db")
    kept = sorted(os.fsdecode(path) for (path,) in db.execute("SELECT path FROM post_facts"))
    db.close()
    assert kept == now  # the table stays the size of the site
    assert_summary_is_the_full_build(site)


def test_a_new_id_key_takes_every_post_again(site: Path) -> None:
    videos = len(list(video_posts(site, discover(site, SiteSettings().posts_globs))))
    post = site / "_posts/2030-01-01-under-another-key.md"
    post.write_text('---\ntitle: "t"\nclip: "AbCdEfGhIjK"\nviewcount: "5"\n---\n')
    plain = write_summary(site, load_settings({"site": str(site)}, {}))
    assert plain is not None and plain["counts"]["videos"] == videos  # "clip" is no id key by default
    keyed = write_summary(site, load_settings({"site": str(site), "id_key": "clip"}, {}))
    # no file changed, but what is a video post did: only this one names its video under "clip"
    assert keyed is not None and keyed["counts"]["videos"] == 1, keyed


def test_facts_kept_by_the_previous_version_are_taken_again_once(site: Path, reads: Counter[str]) -> None:
    settings = load_settings({"site": str(site)}, {})
    assert write_summary(site, settings) is not None
    db = sqlite3.connect(site / ".postrefresh" / "state.db")
    rows = db.execute("SELECT path, facts FROM post_facts").fetchall()
    for path, facts in rows:  # as the previous version kept them: no id key, None for "no video"
        old = None if json.loads(facts).get("video") is False else {
            k: v for k, v in json.loads(facts).items() if k != "id_key"}
        db.execute("UPDATE post_facts SET facts = ? WHERE path = ?",
                   (None if old is None else json.dumps({**old, "views": 1}), path))
    db.commit()
    db.close()
    reads.clear()
    write_summary(site, settings)  # None: the summary is the same, nothing to write
    assert sum(reads.values()) == len(rows)  # each taken again, its stale views not trusted
    assert_summary_is_the_full_build(site)
    reads.clear()
    write_summary(site, settings)
    assert sum(reads.values()) == 0  # and kept again, in this version's form


PREVIOUS_SCHEMA = """
CREATE TABLE IF NOT EXISTS posts (path TEXT PRIMARY KEY, vid_id TEXT NOT NULL, checked_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS posts_vid ON posts (vid_id);
CREATE TABLE IF NOT EXISTS videos (vid_id TEXT PRIMARY KEY, absences INTEGER NOT NULL DEFAULT 0,
    absent_seen_at REAL, etag TEXT, last_modified TEXT, thumb_size TEXT);
CREATE TABLE IF NOT EXISTS quota (day TEXT PRIMARY KEY, units INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS problems (path BLOB PRIMARY KEY, reason TEXT NOT NULL, seen_at REAL NOT NULL);
"""  # worker/site/state.py before the facts table (git show 5f94ba4:worker/site/state.py)


def test_a_state_db_of_the_previous_version_opens_keeps_its_data_and_gains_the_facts(site: Path) -> None:
    folder = site / ".postrefresh"
    folder.mkdir()
    db = sqlite3.connect(folder / "state.db")
    db.executescript(PREVIOUS_SCHEMA)
    db.execute("INSERT INTO posts VALUES (?, ?, ?)", (b"_posts/a.md", GONE, 1000.0))
    db.execute("INSERT INTO videos (vid_id, absences, absent_seen_at) VALUES (?, 2, 900.0)", (GONE,))
    db.execute("INSERT INTO quota VALUES ('2026-01-01', 42)")
    db.commit()
    db.close()
    with SiteState(site) as state:
        assert state.checked_times(["_posts/a.md", "_posts/b.md"]) == {"_posts/a.md": 1000.0}
        assert state.absences([GONE, SHARED]) == {GONE: 2, SHARED: 0}
        assert state.units_on("2026-01-01") == 42
        assert state.cached_facts(["_posts/a.md"]) == {}
        state.remember_facts([("_posts/a.md", (1, 2, 3), None)])
        assert state.cached_facts(["_posts/a.md"]) == {"_posts/a.md": ((1, 2, 3), None)}


def test_observe_counts_an_absence_once_per_answer_in_one_batch(site: Path) -> None:
    with SiteState(site) as state:
        assert state.observe([(GONE, False), (SHARED, True)], 100.0) == {GONE: 1, SHARED: 0}
        assert state.observe([(GONE, False)], 100.0) == {GONE: 1}  # the same answer again
        assert state.observe([(GONE, False), (SHARED, False)], 200.0) == {GONE: 2, SHARED: 1}
        assert state.absences([GONE]) == {GONE: 2}


def test_a_pass_checks_each_folder_once_and_still_refuses_symlinks(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    (site / "_posts" / "2023").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.md").write_text("---\n---\n")
    for n in range(20):
        (site / "_posts" / "2023" / f"{n}.md").write_text("---\n---\n")
    os.symlink(outside, site / "_posts" / "linked")
    os.symlink(outside / "x.md", site / "_posts" / "2023" / "link.md")
    checked: Counter[str] = Counter()
    real = Path.lstat

    def counting(path: Path) -> os.stat_result:
        checked[path.name] += 1
        return real(path)

    monkeypatch.setattr(Path, "lstat", counting)
    folders = SitePaths(site)
    for n in range(20):
        folders.resolve(f"_posts/2023/{n}.md")
    assert checked["_posts"] == 1 and checked["2023"] == 1
    for rel in ("_posts/linked/x.md", "_posts/2023/link.md", "_posts/../../outside/x.md"):
        with pytest.raises(PostFormatError, match="outside the site"):
            folders.resolve(rel)


def test_a_run_stopped_by_the_quota_after_writing_leaves_the_exact_summary(
        cli: Cli, tmp_path: Path, sim: YouTubeSimulator, reads: Counter[str]) -> None:
    site = tmp_path / "big"
    generate_site(site, 400, seed=4)
    sim.config = dataclasses.replace(sim.config, quota_units=3)
    result = cli("run", "--site", str(site), "--no-thumbnails", "--json")
    assert result.code == 75 and json.loads(result.out)["refreshed"] == 150
    # once to fetch, once under the write lock (a written post); the summary adds no read
    assert set(reads.values()) == {1, 2} and list(reads.values()).count(2) == 150
    assert_summary_is_the_full_build(site)  # posts written, read but not reached, and never read


def test_a_scan_reads_each_post_once_and_the_summary_after_it_none(site: Path, reads: Counter[str]) -> None:
    settings = load_settings({"site": str(site)}, {})
    with SiteState(site) as state:
        due = list(due_posts(site, settings, state, time.time()))  # what the Celery scan task does
    assert due and reads == Counter(dict.fromkeys(names(site), 1))
    reads.clear()
    assert write_summary(site, settings) is not None
    assert reads == Counter()
    assert_summary_is_the_full_build(site)
