"""`postrefresh enqueue`, `status` and `metrics`: the operator's side of the Celery layer.

Each gets the Settings its own command line built (tasks.cli) and makes its app from them.
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from tasks.app import create_app
from tasks.runtime import redis_client
from worker.errors import EXIT_OK, EXIT_SOME_FAILED, BrokerUnreachable, ConfigError
from worker.refresh.scheduler import due_posts, due_text, plan
from worker.refresh.selection import Selection
from worker.settings import Settings
from worker.shared import activity, dislikes
from worker.shared.enqueue import enqueue_posts
from worker.shared.fetcher import paused_until, units_today
from worker.shared.keys import QUEUES
from worker.site.paths import bad_post_line, display, require_posts_folder, site_relative
from worker.site.posts import discover
from worker.site.state import SiteState
from worker.times import utc_minute

BATCH_TASKS = ("postrefresh.fetch_batch", "postrefresh.write_batch")
PAGE = 1_000


def cmd_enqueue(args: argparse.Namespace, settings: Settings) -> int:
    """Queue the selected posts, one fetch message per 50 videos; prints queued / already queued / bad."""
    if not (args.all or args.stale is not None or args.paths):
        raise ConfigError("say which posts: --all, --stale AGE or PATHS")
    site = settings.require_site()
    # before anything is left in a non-site
    require_posts_folder(site, settings.site.generator, settings.site.posts_globs)
    client = _redis(settings)
    app = create_app(settings)
    with SiteState(site) as state:
        stale_before = time.time() - args.stale if args.stale is not None else None
        selection = Selection(site, state, stale_before, on_bad=_print_bad, id_key=settings.site.id_key)
        candidates = [site_relative(site, p) for p in args.paths] or discover(site, settings.site.posts_globs)
        posts = ((p.path, p.vid_id) for p in selection.posts(candidates))
        try:
            with app.producer_or_acquire() as producer:
                report = enqueue_posts(
                    client, _listed(posts) if args.dry_run else posts,
                    lambda posts: app.send_task("postrefresh.fetch_batch", (posts,), producer=producer),
                    visibility_timeout=settings.queue.visibility_timeout, dry_run=args.dry_run)
        except (redis.ConnectionError, OperationalError) as exc:
            raise BrokerUnreachable(f"cannot reach Redis at {_safe_url(settings)}: {exc}") from None
    counts = selection.counts
    verb = "would queue" if args.dry_run else "queued"
    print(f"{verb}: {report.queued}  already queued: {report.already_queued}  "
          f"skipped as bad: {counts.bad}  not video posts: {counts.not_video}  "
          f"refreshed recently: {counts.fresh}")
    return EXIT_SOME_FAILED if counts.bad else EXIT_OK


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Print queued posts per queue, tasks in flight, today's outcomes and quota, last errors and the plan."""
    client = _redis(settings)
    now = time.time()
    try:
        facts: dict[str, Any] = {
            "queues": {q: queued_posts(client, q) for q in QUEUES},
            "quota_used_today": units_today(client, now),
            "quota_budget": settings.api.daily_quota,
            "paused_until": paused_until(client, now),
            **activity.today(client, now),
        }
    except redis.ConnectionError as exc:
        raise BrokerUnreachable(f"cannot reach Redis at {_safe_url(settings)}: {exc}") from None
    if settings.dislikes.enabled:
        facts["dislikes"] = dislikes.status(client, dislikes.limiter_for(client, settings), now)
    facts["in_flight"] = _in_flight(create_app(settings))
    site = settings.site.site
    if site is not None and site.is_dir():
        with SiteState(site) as state:
            chosen = plan(due_posts(site, settings, state, now),
                          settings.api.units_left(facts["quota_used_today"]))
        facts["plan"] = {"due_per_tier": chosen.due_per_tier, "units_needed": chosen.units_needed,
                         "units_left": chosen.units_left, "waiting_for_quota": chosen.waiting}
    print(json.dumps(facts, indent=2) if args.json else _as_text(facts))
    return EXIT_OK


def cmd_metrics(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the workers' counters (kept in Redis) on /metrics until interrupted."""
    from worker.outputs.metrics import serve  # prometheus_client only for this command

    client = _redis(settings)
    server, _ = serve(client, args.port, args.host, budget=settings.api.daily_quota)
    print(f"metrics at http://{args.host}:{server.server_address[1]}/metrics; Ctrl-C stops")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return EXIT_OK


def queued_posts(client: redis.Redis, queue: str) -> int:
    """How many posts (or other tasks) wait in `queue`: a batch message counts its posts."""
    total = 0
    for start in range(0, int(client.llen(queue)), PAGE):
        for raw in client.lrange(queue, start, start + PAGE - 1):
            total += _posts_in(raw)
    return total


def _posts_in(raw: bytes | str) -> int:
    # kombu's Redis transport keeps each message as JSON: headers name the task, and the body
    # (base64 by default) is Celery's [args, kwargs, embed]; a batch's first argument is its list.
    try:
        message = json.loads(raw)
        if message["headers"]["task"] not in BATCH_TASKS:
            return 1
        body = message["body"]
        if message["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        return len(json.loads(body)[0][0])
    except (ValueError, TypeError, KeyError, IndexError):
        return 1  # not a message this version wrote: one task


def _in_flight(app: Celery) -> int | None:
    replies = app.control.inspect(timeout=1.0).active()
    return None if replies is None else sum(len(tasks) for tasks in replies.values())


def _as_text(facts: dict[str, Any]) -> str:
    lines = [
        "queues: " + "  ".join(f"{q} {n}" for q, n in facts["queues"].items()),
        f"in flight: {'no worker answered' if facts['in_flight'] is None else facts['in_flight']}",
        "today: " + ("  ".join(f"{k} {v}" for k, v in sorted(facts["outcomes"].items())) or "nothing yet"),
        f"quota: {facts['quota_used_today']} of {facts['quota_budget']} units used today"
        + (f", paused until {utc_minute(facts['paused_until'])}" if facts["paused_until"] else ""),
    ]
    if "plan" in facts:
        lines.append(_plan_text(facts["plan"]))
    if "dislikes" in facts:
        lines.append(dislikes.as_text(facts["dislikes"]))
    lines += [f"error: {e}" for e in facts["last_errors"]]
    return "\n".join(lines)


def _plan_text(plan: dict[str, Any]) -> str:
    due = due_text(plan["due_per_tier"])
    return (f"plan: {'due ' + due if due else 'nothing due'}; needs {plan['units_needed']} units, "
            f"{plan['units_left']} left today; {plan['waiting_for_quota']} wait for quota")


def _redis(settings: Settings) -> redis.Redis:
    client = redis_client(settings)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise BrokerUnreachable(f"cannot reach Redis at {_safe_url(settings)} ({exc}); start it or fix "
                                "REDIS_URL, then rerun") from None
    return client


def _safe_url(settings: Settings) -> str:
    # A Redis URL may hold a password: show the host only.
    parts = urlsplit(settings.queue.redis_url)
    return f"{parts.hostname}:{parts.port or 6379}"


def _print_bad(path: str, reason: str) -> None:
    print(bad_post_line(path, reason))


def _listed(posts: Iterator[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    for path, vid in posts:
        print(f"would queue {display(path)} ({vid})")
        yield path, vid
