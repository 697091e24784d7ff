"""`postrefresh report`: one self-contained HTML page of the whole site's history.

Posts are streamed (in worker processes on big sites); of each video only what the page
shows is kept: title, channel, id, path, status, current views, 7- and 30-day gains and a
series of views down-sampled to SPARK_POINTS, already encoded as its JSON row.
"""

from __future__ import annotations

import csv
import heapq
import itertools
import json
import multiprocessing
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from worker.errors import ConfigError
from worker.outputs.report.data import SPARK_POINTS, WINDOWS, ReportData, Unreadable, VideoSummary
from worker.outputs.report.page import render
from worker.refresh.changes import STATUS, UNAVAILABLE
from worker.refresh.facts import views_key as views_key_of
from worker.settings import Settings, SiteSettings
from worker.site import history
from worker.site.files import write_atomic
from worker.site.paths import display
from worker.site.posts import Post, discover, video_posts
from worker.site.state import SiteState, has_state
from worker.times import parse_time, utc_stamp

TOP_RISERS = 20
CHUNK = 256
SHOWN_UNREADABLE = 500
SERIAL_BELOW = 2 * CHUNK  # fewer posts than this are read in-process: a pool costs more


def down_sample(series: history.Series, limit: int = SPARK_POINTS) -> history.Series:
    """At most `limit` points, evenly spread by index, the first and last always kept."""
    if len(series) <= limit:
        return series
    step = (len(series) - 1) / (limit - 1)
    return [series[round(i * step)] for i in range(limit)]


def summarise(site: Path, layout: SiteSettings, rel: str, views_key: str, now: float
              ) -> VideoSummary | Unreadable | None:
    """One post's summary; (path, reason) when it cannot be read; None when not a video post."""
    return next(_summarised(site, layout, [rel], views_key, now), None)


def _summarised(site: Path, layout: SiteSettings, paths: Iterable[str], views_key: str, now: float
                ) -> Iterator[VideoSummary | Unreadable]:
    # the bad posts are given in their place among the others, so the page lists them in site order
    bad: list[Unreadable] = []
    for post in video_posts(site, paths, on_bad=lambda rel, reason: bad.append((display(rel), reason)),
                            id_key=layout.id_key):
        yield from bad
        bad.clear()
        yield _summary(site, layout, post, views_key, now)
    yield from bad


def _summary(site: Path, layout: SiteSettings, post: Post, views_key: str, now: float
             ) -> VideoSummary | Unreadable:
    rel, mapping = post.path, post.mapping
    try:
        kept = history.series(site, layout.history_dir, post.vid_id, mapping, [views_key])
        points = history.number_series(kept, views_key)
    except (OSError, ValueError, csv.Error) as exc:  # one broken CSV must not stop the report
        return display(rel), f"history CSV of {post.vid_id} cannot be read: {exc}"
    gains = tuple(_gain(points, now, days) for days in WINDOWS)
    status = UNAVAILABLE if mapping.get(STATUS) == UNAVAILABLE else ""
    title, channel = (history.as_text(mapping.get(key)) or "" for key in ("title", "channel"))
    views = points[-1][1] if points else None
    spark = [value for point in down_sample(points) for value in point]
    row = json.dumps([title, channel, post.vid_id, display(rel), status, views, *gains, spark],
                     ensure_ascii=False, separators=(",", ":"))
    seen_at = parse_time(history.observed_at(mapping)) if status else None
    return VideoSummary(row, post.vid_id, title, status, seen_at, gains)


def _gain(points: history.Series, now: float, days: int) -> int | None:
    gained = history.window_gain(points, now, days * 86400)
    return None if gained is None else gained[0]


def collect(settings: Settings, now: float | None = None, jobs: int | None = None) -> ReportData:
    """Read every post of the site and the state database into the page's data."""
    site = settings.require_site()
    data = ReportData(generated_at=time.time() if now is None else now)
    views_key = views_key_of(settings)
    tops: dict[int, list[tuple[int, int, str, str]]] = {days: [] for days in WINDOWS}
    summaries = _summaries(site, settings.site, discover(site, settings.site.posts_globs), views_key,
                           data.generated_at, jobs or os.cpu_count() or 1)
    for result in summaries:
        if isinstance(result, tuple):
            data.unreadable += 1
            if len(data.unreadable_posts) < SHOWN_UNREADABLE:
                data.unreadable_posts.append({"path": result[0], "reason": result[1]})
        else:
            _add(data, tops, result)
    data.risers = {days: [{"vid_id": vid, "title": title, "gain": gain_, "row": -negative_index}
                          for gain_, negative_index, vid, title in sorted(top, reverse=True)]
                   for days, top in tops.items()}
    data.unavailable.sort(key=lambda item: item["at"] or "", reverse=True)
    _add_state(site, data)
    return data


def _add(data: ReportData, tops: dict[int, list[tuple[int, int, str, str]]], video: VideoSummary) -> None:
    index = len(data.rows)
    data.rows.append(video.row)
    for days, gained in zip(WINDOWS, video.gains, strict=True):
        if gained is not None and gained > 0:
            item = (gained, -index, video.vid_id, video.title)
            heap = tops[days]
            (heapq.heappush if len(heap) < TOP_RISERS else heapq.heappushpop)(heap, item)
    if video.status:
        at = None if video.seen_at is None else utc_stamp(video.seen_at)
        data.unavailable.append({"vid_id": video.vid_id, "title": video.title, "at": at, "row": index})


def _add_state(site: Path, data: ReportData) -> None:
    if not has_state(site):
        return  # never refreshed: no quota spent, no run to report on
    with SiteState(site) as state:
        data.quota = [{"day": day, "calls": units, "units": units} for day, units in state.quota_days()]
        data.problems = [{"path": path, "reason": reason, "at": utc_stamp(seen_at)}
                         for path, reason, seen_at in state.problems()]


def _summaries(site: Path, layout: SiteSettings, paths: Iterator[str], views_key: str, now: float,
               jobs: int) -> Iterator[VideoSummary | Unreadable]:
    head = list(itertools.islice(paths, SERIAL_BELOW))
    if jobs < 2 or len(head) < SERIAL_BELOW:
        yield from _summarised(site, layout, itertools.chain(head, paths), views_key, now)
        return
    chunks = _chunks(itertools.chain(head, paths))
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        tasks = ((site, layout, chunk, views_key, now) for chunk in chunks)
        for results in pool.imap(_summarise_chunk, tasks):
            yield from results


def _chunks(paths: Iterator[str]) -> Iterator[list[str]]:
    while chunk := list(itertools.islice(paths, CHUNK)):
        yield chunk


def _summarise_chunk(task: tuple[Path, SiteSettings, list[str], str, float]
                     ) -> list[VideoSummary | Unreadable]:
    site, layout, chunk, views_key, now = task
    return list(_summarised(site, layout, chunk, views_key, now))


def write_report(settings: Settings, out: Path, now: float | None = None) -> ReportData:
    """Collect the site's data and write the page to `out` (atomically)."""
    if not out.parent.is_dir():  # said before minutes of reading, not after
        raise ConfigError(f"cannot write {out}: the folder {out.parent} does not exist")
    data = collect(settings, now)
    parts = (part.encode("utf-8") for part in render(data, settings.require_site().name))
    try:
        write_atomic(out, parts)
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror}; choose another --out") from None
    return data
