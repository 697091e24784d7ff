"""The Celery app, made from a Settings value: `create_app(settings)`.

Every setting below says why it is set; the values that vary per site come from the same
Settings object as `postrefresh run`. `tasks.celery` builds the app `celery -A tasks` loads;
the operator's commands build theirs from their own command line.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import (
    after_setup_logger,
    import_modules,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
)
from kombu.entity import Queue

from tasks.flower_auth import refuse_open_flower
from tasks.runtime import ProcessRuntime
from worker.settings import Settings
from worker.shared.keys import FETCH_QUEUE, QUEUES, SCAN_QUEUE, WRITE_QUEUE


def time_limit(settings: Settings) -> int:
    """A task's hard time limit: a stuck API call or disk must not hold a process forever.

    It stays below the visibility timeout, so a task is never redelivered while it still runs.
    """
    return min(300, settings.queue.visibility_timeout // 2)


def create_app(settings: Settings) -> Celery:
    """A Celery app whose broker, timeouts, beat schedule and worker resources come from `settings`.

    `app.runtime` is the ProcessRuntime its tasks use: a prefork child builds it after the fork
    and closes it when it exits. The solo pool sends worker_process_init from the worker's main
    process but never worker_process_shutdown, so the worker's own shutdown closes it there.
    """
    # tasks.jobs holds shared tasks: they join whichever app loads them, this one in a worker.
    app = Celery("postrefresh", broker=settings.broker, include=["tasks.jobs"])
    app.conf.update(_delivery(settings), **_routing(settings))
    if settings.publish.commit:
        app.conf.beat_schedule["publish-written-files"] = {
            "task": "postrefresh.publish", "schedule": settings.publish.every}
    import_modules.connect(refuse_open_flower, sender=app)
    # The signals hold the runtime weakly: it lives as long as the app that holds it.
    app.runtime = ProcessRuntime(settings)
    worker_process_init.connect(app.runtime.open)
    worker_process_shutdown.connect(app.runtime.close)
    worker_shutdown.connect(app.runtime.close)
    return app


@after_setup_logger.connect
def _quiet_http_requests(loglevel: int, **_: Any) -> None:
    # httpx logs every request at INFO, one per thumbnail too; the batch lines say enough at
    # INFO (`--loglevel DEBUG` shows each request). Never the key: it is only in a header.
    if loglevel > logging.DEBUG:
        logging.getLogger("httpx").setLevel(logging.WARNING)


def _delivery(settings: Settings) -> dict[str, Any]:
    """How a message travels and when it may run again."""
    limit = time_limit(settings)
    return dict(
        # JSON only: a task message is data (a path, an id, stats), never code to unpickle.
        task_serializer="json",
        accept_content=["json"],
        # Nobody reads task results: storing them would only grow Redis.
        task_ignore_result=True,
        result_backend=None,
        # Ack after the task ran, and requeue if the worker process dies: a kill -9 mid-task
        # loses nothing (tasks are idempotent: a second run of a write finds nothing to change).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One reserved task per process: long tasks do not hold others hostage, and a crash
        # returns at most one message per process to the queue.
        worker_prefetch_multiplier=1,
        broker_transport_options=_transport_options(settings),
        task_soft_time_limit=limit * 4 // 5,
        task_time_limit=limit,
        broker_connection_retry_on_startup=True,
    )


def _routing(settings: Settings) -> dict[str, Any]:
    """Which queue each task goes to, what Flower sees, and beat's schedule."""
    return dict(
        task_default_queue=FETCH_QUEUE,
        task_queues=tuple(Queue(name) for name in QUEUES),
        task_routes={
            "postrefresh.fetch_batch": {"queue": FETCH_QUEUE},
            "postrefresh.write_batch": {"queue": WRITE_QUEUE},
            # The per-post tasks of earlier versions, for the messages they queued.
            "postrefresh.fetch": {"queue": FETCH_QUEUE},
            "postrefresh.write": {"queue": WRITE_QUEUE},
            "postrefresh.thumbnail": {"queue": WRITE_QUEUE},
            "postrefresh.scan": {"queue": SCAN_QUEUE},
            "postrefresh.publish": {"queue": WRITE_QUEUE},  # git runs where the site is
        },
        # Flower sees every task as a worker receives, starts and finishes it. No "task-sent"
        # event: it would cost one more Redis publish per post at enqueue (a quarter of its time).
        worker_send_task_events=True,
        task_send_sent_event=False,
        beat_schedule={
            "scan-due-posts": {"task": "postrefresh.scan", "schedule": settings.tiers.scan_every},
        },
    )


def _transport_options(settings: Settings) -> dict[str, int]:
    # Unacked messages come back after the visibility timeout; it must exceed every countdown
    # (shared/steps.max_countdown) and every task's time limit, or a slow task would run twice.
    # The Redis transport sweeps for such messages every interval x throttle seconds (100 s by
    # default); a short visibility timeout (tests, fast recovery) gets a matching short sweep.
    return {
        "visibility_timeout": settings.queue.visibility_timeout,
        "unacked_restore_interval": max(1, min(10, settings.queue.visibility_timeout // 6)),
        "unacked_restore_throttle": 1 if settings.queue.visibility_timeout < 600 else 10,
    }
