"""The Celery layer's subcommands of `postrefresh`: enqueue, status, metrics.

The CLI finds `register` through the `postrefresh.commands` entry point (worker/ never names
this package). Each command builds its Settings from its own command line, like `run`;
Celery is imported only when one of them runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from worker.cli.common import duration_arg, settings_from


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add enqueue, status and metrics to the `postrefresh` parser."""
    enqueue = sub.add_parser("enqueue", parents=[common], help="queue posts for the Celery workers")
    enqueue.add_argument("paths", nargs="*", help="only these posts (paths inside the site)")
    enqueue.add_argument("--all", action="store_true", help="every video post")
    enqueue.add_argument("--stale", type=duration_arg, metavar="AGE", help="posts last checked AGE ago")
    enqueue.add_argument("--dry-run", action="store_true", help="list what would be queued")
    enqueue.set_defaults(handler=_command("cmd_enqueue"))
    status = sub.add_parser("status", parents=[common], help="queues, quota, errors and the plan")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_command("cmd_status"))
    metrics = sub.add_parser("metrics", parents=[common], help="serve the workers' Prometheus metrics")
    metrics.add_argument("--port", type=int, default=9808, help="port of /metrics (9808)")
    metrics.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a container)")
    metrics.set_defaults(handler=_command("cmd_metrics"))


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        from tasks import commands  # Celery and kombu only when a Celery command runs

        result: int = getattr(commands, name)(args, settings_from(args))
        return result

    return handler
