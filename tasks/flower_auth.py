"""Flower never serves without authentication, and listens on 127.0.0.1 unless told otherwise.

`celery -A tasks flower` parses Flower's options (command line, FLOWER_* env vars, its
`--conf` file) and then builds its web app, which imports the Celery app's task modules:
that `import_modules` signal is where this check runs, before Flower opens a port.
Flower leaves its Prometheus `/metrics` open (worker names, task names and counts); it gets the
same authentication as every page. Only `/healthcheck` ("OK", for liveness probes) stays open.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from worker.errors import EXIT_USAGE

REFUSAL = ("postrefresh: Flower refuses to start without authentication: set "
           "FLOWER_BASIC_AUTH=user:password (or pass --basic-auth=user:password, or --auth for OAuth)")
WEAK_ENTRY = ("postrefresh: Flower refuses to start: every FLOWER_BASIC_AUTH (or --basic-auth) entry "
              "must be user:password, and these have no user or no password: {users}")
LOOPBACK = "127.0.0.1"


def refuse_open_flower(**_: Any) -> None:
    """In `celery flower`: exit 2 with one line unless Flower has authentication; bind loopback."""
    context = click.get_current_context(silent=True)
    if context is None or context.command.name != "flower":
        return  # a worker, beat or our own commands importing the task modules
    from flower.options import options  # Flower is running: its options are parsed by now

    entries = [entry for entry in options.basic_auth or () if entry]  # "a:b," leaves an empty one
    weak = [entry.partition(":")[0] or "(no user)" for entry in entries if not is_credential(entry)]
    if weak:
        print(WEAK_ENTRY.format(users=", ".join(weak)), file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    if not (options.auth or entries):
        print(REFUSAL, file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    if not options.address and not options.unix_socket:
        options.address = LOOPBACK  # Flower's own default is every interface
    _protect_metrics()


def _protect_metrics() -> None:
    from flower.views.monitor import Metrics
    from tornado.web import authenticated

    if not getattr(Metrics.get, "__wrapped__", None):  # once, even if the signal fires again
        Metrics.get = authenticated(Metrics.get)


def is_credential(entry: str) -> bool:
    """Whether a basic-auth entry is `user:password` with both parts.

    Flower lets in whoever sends exactly `user:password`, so `guest:` is a login with an empty
    password and `:` one with no user and no password.
    """
    user, _, password = entry.partition(":")
    return bool(user and password)
