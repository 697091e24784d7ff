"""The Celery app, built at import because `celery -A tasks` loads this module (and only it).

Every setting below says why it is set; the values that vary per site come from the same
Settings object as `postrefresh run` (env vars and TOML, read here once).
"""

from __future__ import annotations

import os

from celery import Celery
from kombu.entity import Queue

from worker.settings import load_settings, parse_duration

settings = load_settings({}, os.environ)

# Retries and the quota pause never wait longer than this in one countdown, so a countdown
# always ends well inside the broker's visibility timeout (no duplicate redelivery).
MAX_COUNTDOWN = min(3_600, settings.visibility_timeout // 2)
# A stuck API call or disk must not hold a process forever; the hard limit also stays below
# the visibility timeout, so a task is never redelivered while it still runs.
TIME_LIMIT = min(300, settings.visibility_timeout // 2)

app = Celery("postrefresh", broker=settings.broker, include=["tasks.jobs"])
app.conf.update(
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
    # Unacked messages come back after this; it must exceed every countdown (MAX_COUNTDOWN)
    # and every task's time limit, or a slow task would run twice.
    # The Redis transport sweeps for such messages every interval x throttle seconds (100 s by
    # default); a short visibility timeout (tests, fast recovery) gets a matching short sweep.
    broker_transport_options={
        "visibility_timeout": settings.visibility_timeout,
        "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 6)),
        "unacked_restore_throttle": 1 if settings.visibility_timeout < 600 else 10,
    },
    task_soft_time_limit=TIME_LIMIT * 4 // 5,
    task_time_limit=TIME_LIMIT,
    task_default_queue="fetch",
    task_queues=(Queue("fetch"), Queue("write"), Queue("scan")),
    task_routes={
        "postrefresh.fetch": {"queue": "fetch"},
        "postrefresh.write": {"queue": "write"},
        "postrefresh.thumbnail": {"queue": "write"},
        "postrefresh.scan": {"queue": "scan"},
        "postrefresh.publish": {"queue": "write"},  # git runs where the site is
    },
    # Flower sees every task as a worker receives, starts and finishes it. No "task-sent"
    # event: it would cost one more Redis publish per post at enqueue (a quarter of its time).
    worker_send_task_events=True,
    task_send_sent_event=False,
    broker_connection_retry_on_startup=True,
    beat_schedule={
        "scan-due-posts": {"task": "postrefresh.scan", "schedule": parse_duration(settings.scan_every)},
    },
)
if settings.publish_commit:
    app.conf.beat_schedule["publish-written-files"] = {
        "task": "postrefresh.publish", "schedule": parse_duration(settings.publish_every)}
