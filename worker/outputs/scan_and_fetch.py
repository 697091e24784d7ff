"""The Celery tasks' steps that also tell a person or write the summary: the scan, and the fetch.

Like shared/steps.py, plain functions of one worker process's resources; they sit here, above
shared/, because they reach the notifier and the summary file. Sending a task is passed in.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from worker.errors import ApiKeyRejected, ApiUnreachable, QuotaPaused
from worker.outputs.after_run import refresh_summary
from worker.outputs.notify import Events, Notifier
from worker.refresh.scheduler import due_text, scan_site
from worker.shared import ledger
from worker.shared.enqueue import PostRef, Publish, enqueue_posts
from worker.shared.fetcher import units_today
from worker.shared.steps import (
    Resources,
    SendWrites,
    fetch_for_posts,
    first_rejection,
    give_up,
    refuse_bad_ids,
)
from worker.times import utc_stamp

log = logging.getLogger(__name__)


class NotifyingResources(Resources, Protocol):
    """A worker process's resources, with where its notifications go."""

    @property
    def notifier(self) -> Notifier | None: ...


def scan_and_queue(rt: NotifyingResources, send_fetch: Publish, now: float) -> dict[str, Any]:
    """Queue the posts due by their freshness tier, as many as today's quota allows; tell of the
    posts newly bad and rewrite the summary. Returns what was due, queued and left waiting."""
    s = rt.settings
    scanned = scan_site(rt.site, s, rt.state, now, s.api.units_left(units_today(rt.redis, now)))
    chosen = scanned.plan
    if rt.notifier is not None:
        rt.notifier.tell(Events(site=str(s.site.site), became_bad=scanned.became_bad))
    report = enqueue_posts(rt.redis, ((d.path, d.vid_id) for d in chosen.chosen), send_fetch,
                           visibility_timeout=s.queue.visibility_timeout)
    log.info("scan: %d due (%s), %d queued, %d already queued, %d wait for quota",
             sum(chosen.due_per_tier.values()), due_text(chosen.due_per_tier),
             report.queued, report.already_queued, chosen.waiting)
    # The summary is of the posts as they are now: the writes just queued show in the next one.
    written: dict[str, str] = {}
    refresh_summary(rt.site, s, written)
    if s.publish.commit:
        ledger.record(rt.redis, written)
    return {"due": chosen.due_per_tier, "queued": report.queued, "waiting": chosen.waiting}


async def fetch_or_give_up(rt: NotifyingResources, posts: list[PostRef], *, send_writes: SendWrites,
                           last_try: bool) -> None:
    """Fetch the posts with a video id and queue their writes; give up on them when the key is
    rejected, or when the API stays unreachable on the last try.

    Raises QuotaPaused (after telling of a pause this fetch began) or, unless `last_try`,
    ApiUnreachable: the caller tries again later.
    """
    good = refuse_bad_ids(rt.redis, posts)
    if not good:
        return
    try:
        await fetch_for_posts(rt, good, send_writes=send_writes)
    except QuotaPaused as exc:
        if exc.began and rt.notifier is not None:  # one message for the pause, not one per task
            paused = Events(site=str(rt.settings.site.site), quota_paused_until=utc_stamp(exc.resume_at))
            rt.notifier.tell(paused)
        raise
    except ApiUnreachable as exc:
        if not last_try:
            raise
        give_up(rt.redis, good, str(exc))
    except ApiKeyRejected as exc:
        give_up(rt.redis, good, str(exc))
        if rt.notifier is not None and first_rejection(rt.redis):  # one message an hour, not one per task
            rt.notifier.tell(Events(site=str(rt.settings.site.site), fetch_refused=str(exc)))
