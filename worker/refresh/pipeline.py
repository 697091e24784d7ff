"""The broker-free pipeline behind `postrefresh run`: discover → fetch (batched) → edit → write.

Posts stream from disk into batches of up to 50 distinct video ids; a few batches are in
flight at once (bounded queue, so memory stays flat); each batch costs one videos.list call,
then its posts are written in a worker thread while the next calls are on the wire.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from worker.api.dislikes import DislikeClient, DislikeMeter, add_dislikes
from worker.api.fields import request_mask
from worker.api.rate_limit import TokenBucket
from worker.api.thumbnails import thumbnail_budget_exceeded
from worker.api.youtube import MAX_IDS, ApiMeter, YouTubeClient
from worker.errors import FatalApiError, PostrefreshError
from worker.refresh.facts import FactsLog, written_facts
from worker.refresh.selection import Selection
from worker.refresh.thumbnails import (
    Refreshed,
    stored_files,
    thumbnail_path,
    thumbnail_url,
    update_thumbnails,
)
from worker.refresh.write import Outcome, PostWriter, WriteRequest
from worker.settings import Settings
from worker.site import git
from worker.site.paths import display, thumbnail_folder
from worker.site.posts import Post
from worker.site.state import SiteState, dislike_budget_day
from worker.times import quota_day, utc_day, utc_stamp

log = logging.getLogger(__name__)

RECENT_VIDEOS = 10_000
WRITTEN = ("refreshed", "unavailable")
Observer = Callable[[Outcome], None]


@dataclass
class RunReport:
    """The closing summary of a run."""

    seen: int = 0
    not_video: int = 0
    fresh: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    bad: list[tuple[str, str]] = field(default_factory=list)
    became_bad: list[tuple[str, str]] = field(default_factory=list)  # bad now, not in the last full run
    became_unavailable: list[tuple[str, str]] = field(default_factory=list)  # (path, vid_id) marked now
    started: float = 0.0  # epoch seconds
    not_reached: int = 0
    thumbnails_stored: int = 0
    thumbnails_unchanged: int = 0
    thumbnail_failures: int = 0
    thumbnail_bytes: int = 0
    meter: ApiMeter = field(default_factory=ApiMeter)
    dislikes: DislikeMeter | None = None
    stopped: FatalApiError | None = None
    interrupted: bool = False
    dry_run: bool = False
    seconds: float = 0.0
    written: dict[str, str] = field(default_factory=dict)  # path -> kind, with RunOptions.list_written

    @property
    def wrote(self) -> bool:
        """Whether the run wrote a post or a thumbnail."""
        return not self.dry_run and (self.thumbnails_stored > 0 or any(self.counts.get(s) for s in WRITTEN))

    def count(self, outcome: Outcome) -> None:
        """Add one post's outcome."""
        self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
        if outcome.status == "unavailable" and outcome.written:
            self.became_unavailable.append((display(outcome.path), outcome.vid_id or ""))
        if outcome.status == "bad":
            self.bad.append((display(outcome.path), outcome.reason))


@dataclass
class Batch:
    """Posts whose videos are fetched together; `ids` are the ones this batch asks for."""

    ids: list[str] = field(default_factory=list)
    posts: list[Post] = field(default_factory=list)


@dataclass(frozen=True)
class RunOptions:
    """What one run does, beyond the settings."""

    paths: tuple[str, ...] | None = None
    stale_seconds: float | None = None
    dry_run: bool = False
    thumbnails: bool = True
    list_written: bool = False  # fill RunReport.written, for a commit (a list as long as the site)


class Pipeline:
    """One run over one site; build it, then `await run(...)`."""

    def __init__(self, settings: Settings, site: Path, state: SiteState, http: httpx.AsyncClient,
                 options: RunOptions, observer: Observer) -> None:
        self.settings = settings
        self.site = site
        self.state = state
        self.http = http
        self.options = options
        self.observer = observer
        self.report = RunReport(dry_run=options.dry_run)
        self.now = datetime.now(UTC)
        self.report.started = self.now.timestamp()
        self.stamp = utc_stamp(self.now)
        self.day = quota_day(self.now)
        self.fetched: OrderedDict[str, asyncio.Future[dict[str, str] | None]] = OrderedDict()
        self.stop = asyncio.Event()
        self.first_taken = False
        self.first_answer = asyncio.Event()
        units_left = settings.api.units_left(state.units_on(self.day))
        budget = min(units_left, settings.api.max_units or units_left)
        self.client = YouTubeClient(
            http, api_url=settings.api.url, api_key=settings.api.key or "",
            attempts=settings.api.retry_attempts, max_wait=settings.api.retry_max_wait,
            concurrency=settings.api.concurrency, meter=self.report.meter, max_units=max(budget, 0),
            fields=request_mask(settings.api_paths))
        self.thumb_slots = asyncio.Semaphore(settings.thumbnails.concurrency)
        self.dislike_day = dislike_budget_day(utc_day(self.now.timestamp()))
        self.dislike_limiter = TokenBucket(settings.dislikes.per_minute, settings.dislikes.per_day,
                                           used_today=state.units_on(self.dislike_day))
        if settings.dislikes.enabled:
            self.report.dislikes = DislikeMeter()
        stale_before = None
        if options.stale_seconds is not None:
            stale_before = self.now.timestamp() - options.stale_seconds
        # What summary.json needs of each post read or written, so it reads none again.
        self.facts = (FactsLog(site, state, settings)
                      if settings.site.site_summary and not options.dry_run else None)
        self.selection = Selection(site, state, stale_before,
                                   on_bad=lambda rel, reason: self._finish(Outcome(rel, None, "bad", reason)),
                                   on_read=None if self.facts is None else self.facts.read,
                                   id_key=settings.site.id_key)

    def interrupt(self) -> None:
        """Stop taking new posts; the writes in progress finish (each is atomic)."""
        self.report.interrupted = True
        self.stop.set()

    async def run(self, candidates: Iterable[str]) -> RunReport:
        """Refresh every post in `candidates` (site-relative paths) and return the summary."""
        started = time.monotonic()
        queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=self.settings.api.concurrency)
        try:
            # A task group: if any part fails, the others are cancelled instead of waiting forever.
            async with asyncio.TaskGroup() as group:
                for _ in range(self.settings.api.concurrency):
                    group.create_task(self._consume(queue))
                group.create_task(self._produce(candidates, queue))
        except* PostrefreshError as failed:
            raise failed.exceptions[0] from None  # one clear error, not a group of the same
        finally:
            if self.facts is not None:
                self.facts.flush()
            self.state.add_units(self.day, self.report.meter.units)
            self.state.add_units(self.dislike_day, self.dislike_limiter.taken)
        counts = self.selection.counts
        self.report.seen, self.report.not_video, self.report.fresh = (
            counts.seen, counts.not_video, counts.fresh)
        self.report.stopped = self.client.fatal
        self.report.seconds = time.monotonic() - started
        self._warn_thumbnail_budget()
        return self.report

    async def _produce(self, candidates: Iterable[str], queue: asyncio.Queue[Batch | None]) -> None:
        batch = Batch()
        remaining = iter(candidates)  # shared with the selection: what it has not taken is not reached
        for post in self.selection.posts(remaining):
            if self.stop.is_set() or self.client.fatal is not None:
                # The rest of the site is left for the next run; counting it reads no post.
                self.report.not_reached += 1 + self.selection.not_taken(remaining)
                break
            if post.vid_id not in self.fetched:
                self._remember(post.vid_id)
                batch.ids.append(post.vid_id)
            batch.posts.append(post)
            if len(batch.ids) == MAX_IDS:
                await queue.put(batch)
                batch = Batch()
        if batch.posts:
            await queue.put(batch)
        for _ in range(self.settings.api.concurrency):
            await queue.put(None)

    def _remember(self, vid_id: str) -> None:
        self.fetched[vid_id] = asyncio.get_running_loop().create_future()
        while len(self.fetched) > RECENT_VIDEOS:
            self.fetched.popitem(last=False)

    async def _consume(self, queue: asyncio.Queue[Batch | None]) -> None:
        while (batch := await queue.get()) is not None:
            # The first call goes alone: a rejected key is found by one call, not eight.
            if self.first_taken:
                await self.first_answer.wait()
            self.first_taken = True
            await self._process(batch)

    async def _process(self, batch: Batch) -> None:
        try:
            found = await self.client.list_videos(batch.ids) if batch.ids else {}
        except FatalApiError as exc:
            for vid in batch.ids:
                self.fetched[vid].set_exception(exc)
                self.fetched[vid].exception()  # marks it retrieved; posts below count as not reached
            self.report.not_reached += len(batch.posts)
            self._record_facts(batch.posts, [], {}, [])
            return
        finally:
            self.first_answer.set()
        absences = self._record_absences(batch.ids, found)
        if self.report.dislikes is not None and found:
            # Before the answers are shared, so every post of a video sees its dislikes.
            client = DislikeClient.from_settings(self.http, self.settings, self.report.dislikes)
            await add_dislikes(client, self.dislike_limiter, found, self.settings.dislikes.concurrency)
        for vid in batch.ids:
            self.fetched[vid].set_result(found.get(vid))
        ready: list[tuple[Post, dict[str, str] | None, int]] = []
        # Posts of videos an earlier batch asked for: their absences, in one query.
        absences |= self.state.absences(list({p.vid_id for p in batch.posts if p.vid_id not in absences}))
        for post in batch.posts:
            future = self.fetched.get(post.vid_id)
            if future is None or (future.done() and future.exception() is not None):
                self.report.not_reached += 1
                continue
            video = await future
            ready.append((post, video, absences[post.vid_id]))
        images = await self._thumbnails(batch.ids, found)
        outcomes = await asyncio.to_thread(self._write_posts, ready, images)
        for outcome in outcomes:
            self._finish(outcome)
        self._record_facts(batch.posts, ready, images, outcomes)
        if outcomes:
            statuses = sorted(Counter(o.status for o in outcomes).items())
            log.info("%d posts: %s", len(outcomes), ", ".join(f"{n} {s}" for s, n in statuses))
        if not self.options.dry_run:
            self.state.mark_checked(((o.path, o.vid_id or "") for o in outcomes), self.now.timestamp())

    def _record_absences(self, ids: list[str], found: dict[str, dict[str, str]]) -> dict[str, int]:
        if self.options.dry_run:
            return {vid: 0 if vid in found else count + 1 for vid, count in self.state.absences(ids).items()}
        return self.state.observe(((vid, vid in found) for vid in ids), self.now.timestamp())

    def _record_facts(self, posts: list[Post], ready: list[tuple[Post, dict[str, str] | None, int]],
                      images: dict[str, str], outcomes: list[Outcome]) -> None:
        """Keep what summary.json needs of a batch's posts: as written, or as read if not written."""
        if self.facts is None:
            return
        status = {o.path: o.status for o in outcomes}
        asked = {post.path: (video, absences) for post, video, absences in ready}
        for post in posts:
            done = status.get(post.path)
            if done in WRITTEN:
                video, absences = asked[post.path]
                self.facts.written(post, written_facts(post, video, absences, images.get(post.vid_id),
                                                       self.settings, self.stamp))
            elif done in (None, "unchanged", "held"):  # not reached, or left as it was read
                self.facts.as_read(post)
            else:
                self.facts.forget(post)  # bad or gone when written: the summary reads it afresh

    def _write_posts(self, ready: list[tuple[Post, dict[str, str] | None, int]],
                     images: dict[str, str]) -> list[Outcome]:
        # One batch: its fsyncs run together and each folder is synced once, before any is counted.
        writer = PostWriter(self.site, self.settings, self.stamp, dry_run=self.options.dry_run)
        return writer.write_batch([
            WriteRequest(post.path, post.vid_id, video, absences, thumbnail=images.get(post.vid_id),
                         known=post)
            for post, video, absences in ready
        ], resolved=[post.file for post, _, _ in ready])  # checked when it was read

    def _finish(self, outcome: Outcome) -> None:
        self.report.count(outcome)
        if outcome.written and self.options.list_written:
            self.report.written.update(git.post_files(self.site, self.settings.site.history_dir,
                                                      outcome.path, outcome.vid_id, outcome.status))
        self.observer(outcome)

    async def _thumbnails(self, ids: list[str], found: dict[str, dict[str, str]]) -> dict[str, str]:
        """Refresh the thumbnails of the videos found; returns their local image URLs if wanted."""
        if not self.options.thumbnails or self.options.dry_run:
            return {}
        present = [vid for vid in ids if vid in found]
        refreshed = await update_thumbnails(self.http, self.state, self.site, self.settings, present,
                                            self.thumb_slots)
        for r in refreshed:
            self._tally_thumbnail(r)
        if self.options.list_written:
            self.report.written.update(stored_files(self.settings, refreshed))
        if not self.settings.thumbnails.rewrite_image:
            return {}
        return {r.vid_id: thumbnail_url(self.settings, r.vid_id) for r in refreshed if self._has_thumbnail(r)}

    def _has_thumbnail(self, refreshed: Refreshed) -> bool:
        """Whether the site holds the video's thumbnail after the refresh (a failed one keeps the old)."""
        return (refreshed.status in ("stored", "unchanged")
                or thumbnail_path(self.site, self.settings, refreshed.vid_id).exists())

    def _tally_thumbnail(self, refreshed: Refreshed) -> None:
        if refreshed.status == "failed":
            self.report.thumbnail_failures += 1
            log.warning("thumbnail of %s not updated, previous kept: %s", refreshed.vid_id, refreshed.error)
        elif refreshed.status == "stored":
            self.report.thumbnails_stored += 1
            self.report.thumbnail_bytes += refreshed.bytes_written
        elif refreshed.status == "unchanged":
            self.report.thumbnails_unchanged += 1

    def _warn_thumbnail_budget(self) -> None:
        folder = self.site / thumbnail_folder(self.settings.thumbnails.dir)
        if self.options.thumbnails and thumbnail_budget_exceeded(folder, self.settings.thumbnails.budget_mb):
            log.warning("thumbnails in %s exceed %d MB; choose smaller sizes (thumbnail_sizes)",
                        folder, self.settings.thumbnails.budget_mb)
