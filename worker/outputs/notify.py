"""Notifications through Apprise: one message per run or scan when something needs a person.

`notify = ["<Apprise URL>", ...]` reaches mail, Slack, Matrix, ntfy, a webhook ... with one
setting. Apprise is the `notify` extra, imported only when the setting is used. A message
never holds the API key or a notification URL (both carry tokens), and Apprise's own log is
kept out of ours for the same reason: a target that fails is logged once, by its position and
scheme only, and a notification never fails the run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from worker.errors import EXIT_STOPPED_EARLY, EXIT_USAGE, ConfigError
from worker.refresh.pipeline import RunReport
from worker.refresh.summary import exit_code
from worker.settings import Settings
from worker.site.paths import display
from worker.times import utc_stamp

log = logging.getLogger(__name__)

MAX_LISTED = 10  # posts named in a message; the rest are counted
TITLE = "postrefresh"
SENDERS_LOGS = ("urllib3", "requests", "requests_oauthlib")  # they log request URLs, tokens included
STOP_CODES = (EXIT_USAGE, EXIT_STOPPED_EARLY)  # a key rejected, the quota gone, the API unreachable


@dataclass(frozen=True)
class Notice:
    """One message: what needs a person, and whether something failed (or only changed)."""

    subject: str
    lines: tuple[str, ...]
    failure: bool = False

    @property
    def body(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class Events:
    """What happened in a run or a scan that a person should hear about; plain data."""

    site: str
    stopped: str | None = None  # why the run stopped early or failed (exit 2 or 75)
    became_unavailable: Sequence[tuple[str, str]] = ()  # (post path, vid_id)
    became_bad: Sequence[tuple[str, str]] = ()  # (post path, reason)
    milestones: Sequence[tuple[str, int]] = ()  # (vid_id, the round number of views it passed)
    quota_paused_until: str | None = None  # the Celery path stopped calling until this UTC time
    fetch_refused: str | None = None  # why the Celery path's fetches give up (the key was rejected)


def notice_for(events: Events) -> Notice | None:
    """The message for `events`, or None when nothing needs a person."""
    lines = list(_lines(events))
    if not lines:
        return None
    failure = any(why is not None
                  for why in (events.stopped, events.quota_paused_until, events.fetch_refused))
    subject = f"{TITLE}: {'needs attention' if failure else 'news'} on {events.site}"
    return Notice(subject, tuple(lines), failure)


def _lines(events: Events) -> Iterator[str]:
    if events.stopped is not None:
        yield f"The run stopped early: {events.stopped}"
    if events.quota_paused_until is not None:
        yield f"The daily API quota is spent: no calls until {events.quota_paused_until}."
    if events.fetch_refused is not None:
        yield f"The workers give up fetching (the posts keep their stats): {events.fetch_refused}"
    if events.became_unavailable:
        yield f"{len(events.became_unavailable)} videos became unavailable (their posts keep their stats):"
        yield from _listed(f"  {display(path)} ({vid})" for path, vid in events.became_unavailable)
    if events.became_bad:
        yield f"{len(events.became_bad)} posts became unreadable since the previous run (left as they are):"
        yield from _listed(f"  {display(path)}: {reason}" for path, reason in events.became_bad)
    if events.milestones:
        yield f"{len(events.milestones)} videos passed a round number of views:"
        yield from _listed(f"  {vid}: {views:,} views" for vid, views in events.milestones)


def _listed(items: Iterator[str]) -> Iterator[str]:
    for shown, item in enumerate(items):
        if shown == MAX_LISTED:
            yield f"  ... and {sum(1 for _ in items) + 1} more"
            return
        yield item


class Notifier:
    """Sends notices to the configured Apprise URLs; never raises once built."""

    def __init__(self, urls: Sequence[str]) -> None:
        try:
            import apprise
        except ImportError:
            raise ConfigError("notify is set but Apprise is not installed: "
                              "pip install 'postrefresh[notify]'") from None
        self._apprise = apprise
        self._targets = [(f"notify target {n} ({url.split(':', 1)[0]})", url)
                         for n, url in enumerate(urls, 1)]
        _quiet(apprise)
        for name, url in self._targets:
            if not apprise.Apprise().add(url):
                raise ConfigError(f"notify: {name} is not an Apprise URL Apprise knows")

    @classmethod
    def from_settings(cls, settings: Settings) -> Notifier | None:
        """A notifier for the `notify` URLs, or None when none is set (ConfigError without Apprise)."""
        return cls(settings.notify.urls) if settings.notify.urls else None

    def tell(self, events: Events) -> None:
        """Send the notice for `events`, if they hold anything a person needs to hear."""
        notice = notice_for(events)
        if notice is not None:
            self.send(notice)

    def send(self, notice: Notice) -> bool:
        """Send `notice` to every target; a failing target is logged once. True if all got it."""
        kind = self._apprise.NotifyType.FAILURE if notice.failure else self._apprise.NotifyType.INFO
        sent = True
        for name, url in self._targets:
            target = self._apprise.Apprise()
            target.add(url)
            try:
                with _silenced(SENDERS_LOGS):
                    ok = bool(target.notify(title=notice.subject, body=notice.body, notify_type=kind))
            except Exception as exc:  # a notifier must never fail the run; the URL is not named
                ok = False
                log.debug("%s raised %s", name, type(exc).__name__)
            if not ok:
                log.warning("%s: the notification was not delivered (the run goes on)", name)
            sent = sent and ok
        return sent


def _quiet(apprise: Any) -> None:
    # Apprise logs the URLs it loads and posts to, tokens included: keep its log out of ours.
    logger = logging.getLogger(apprise.__name__)
    logger.setLevel(logging.CRITICAL + 1)
    logger.propagate = False


@contextlib.contextmanager
def _silenced(names: Sequence[str]) -> Iterator[None]:
    """Mute these loggers for the duration: the HTTP libraries Apprise sends with log URLs."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def run_events(settings: Settings, report: RunReport, summary: Mapping[str, Any] | None) -> Events:
    """What a finished `postrefresh run` has to tell: a stop (exit 2 or 75), videos newly
    unavailable, posts newly bad, milestones first seen by this run (from the `summary` it wrote).
    """
    code = exit_code(report)
    stopped = str(report.stopped) if report.stopped is not None and code in STOP_CODES else None
    stamp = utc_stamp(report.started)  # what the run wrote as refreshed_at: first seen by this run
    passed = [(entry["vid_id"], entry["milestone"]) for entry in (summary or {}).get("milestones", [])
              if entry["passed_at"] == stamp]
    return Events(site=str(settings.site.site), stopped=stopped, became_bad=report.became_bad,
                  became_unavailable=report.became_unavailable, milestones=passed)
