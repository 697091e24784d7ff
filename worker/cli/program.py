"""The `postrefresh` command: run, history, demo (and the Celery commands, registered by tasks/)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.api.http import package_version
from worker.cli.ci import add_ci_parser
from worker.cli.common import duration_arg, settings_from
from worker.cli.history import show_history
from worker.cli.report import add_report_parser
from worker.errors import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    CommitFailed,
    ConfigError,
    PostrefreshError,
    PushFailed,
)
from worker.outputs import after_run
from worker.outputs.notify import STOP_CODES, TITLE, Events, Notice, Notifier, run_events
from worker.refresh import summary
from worker.refresh.pipeline import RunOptions, RunReport
from worker.refresh.run import run_site, site_to_refresh
from worker.refresh.write import Outcome
from worker.settings import Settings
from worker.site import git
from worker.site.paths import bad_post_line

if TYPE_CHECKING:
    from worker.cli.progress import Progress

log = logging.getLogger("postrefresh")
COMMANDS_GROUP = "postrefresh.commands"
DESCRIPTION = """Keeps a Jekyll site's YouTube video posts up to date: fetches the current
statistics and thumbnails and edits each post's front matter in place (only the lines
that changed), keeping the old values as history."""
EPILOG = """start here:
  postrefresh demo                          try it offline on the bundled sample site
  postrefresh run --site ~/blog --dry-run   show what a refresh would change, write nothing
  postrefresh run --site ~/blog             refresh every video post (YOUTUBE_API_KEY set)

enqueue, status and metrics drive the Celery path: they need Redis and running workers
(see the README's "Operating the distributed refresher"). `postrefresh COMMAND --help`
says more about each command."""
RUN_DESCRIPTION = ("Refresh the site's video posts now, in this process (no Redis, no workers): one "
                   "videos.list call per 50 posts, only the changed lines edited, history kept. "
                   "Post paths are the site's (_posts/x.md), or paths from the current folder "
                   "inside the site. Exit codes: 0 all done, 1 some posts bad, 2 usage or "
                   "configuration error, 75 stopped early (quota, API, lock), 130 interrupted.")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from worker.cli.demo import add_demo_parser  # the demo pulls in the simulator only when asked

    parser = argparse.ArgumentParser(prog="postrefresh", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"postrefresh {package_version()}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--site", help="the Jekyll site folder (or POSTREFRESH_SITE)")
    common.add_argument("--config", type=Path, help="a TOML settings file (or POSTREFRESH_CONFIG)")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log lines")
    common.add_argument("-q", "--quiet", action="store_true", help="only warnings and the summary")
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")
    run = sub.add_parser("run", parents=[common], help="refresh video posts now, without a broker",
                         description=RUN_DESCRIPTION)
    run.add_argument("paths", nargs="*", help="only these posts (paths inside the site)")
    run.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    run.add_argument("--stale", type=duration_arg, metavar="AGE",
                     help="only posts last checked more than AGE ago (30m, 12h, 7d, 2w)")
    run.add_argument("--no-thumbnails", action="store_true", help="statistics only")
    run.add_argument("--max-units", type=int, help="stop after spending N quota units")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.add_argument("--metrics-file", type=Path, metavar="PATH",
                     help="write the run's metrics here (node_exporter textfile format)")
    run.add_argument("--commit", action="store_true", help="git commit the files this run wrote")
    run.add_argument("--push", action="store_true", help="and git push that commit (with --commit)")
    run.set_defaults(handler=cmd_run)
    hist = sub.add_parser("history", parents=[common], help="the time series of one video",
                          description="Print every value a video's post has had, oldest first, from "
                                      "the post's history and its CSV.")
    hist.add_argument("vid_id")
    hist.add_argument("--json", action="store_true", help="print JSON instead of a table")
    hist.set_defaults(handler=cmd_history)
    note = sub.add_parser("notify", parents=[common], help="send a test notification",
                          description="Send one test message to every `notify` URL, to check them.")
    note.add_argument("--test", action="store_true", required=True, help="send the test message")
    note.set_defaults(handler=cmd_notify)
    _add_registered_commands(sub, common)
    add_demo_parser(sub)
    add_report_parser(sub, common)
    add_ci_parser(sub, common)
    return parser


def _add_registered_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    # The Celery layer adds enqueue, status and metrics through this entry point group, so
    # the domain never names it.
    for entry in entry_points(group=COMMANDS_GROUP):
        entry.load()(sub, common)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of `python -m worker`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args)
    try:
        code: int = args.handler(args)
    except PostrefreshError as exc:
        print(f"postrefresh: {exc}", file=sys.stderr)
        return exc.exit_code
    return code


def cmd_run(args: argparse.Namespace) -> int:
    """`postrefresh run`."""
    settings = settings_from(args, max_units=args.max_units)
    options = RunOptions(paths=tuple(args.paths) or None, stale_seconds=args.stale,
                         dry_run=args.dry_run,
                         thumbnails=settings.thumbnails.enabled and not args.no_thumbnails,
                         list_written=args.commit)
    if args.push and not args.commit:
        raise ConfigError("--push needs --commit")
    if args.commit and not args.dry_run:
        git.check_ready(site_to_refresh(settings))  # refuse before writing anything
    notifier = Notifier.from_settings(settings)  # a missing extra is said before the run
    with _progress(args) as progress, _notify_failure(notifier, settings):
        report = run_site(settings, options, _printer(args), progress)
    if args.metrics_file is not None:
        from worker.outputs.metrics import write_run_textfile  # prometheus_client only when asked

        write_run_textfile(args.metrics_file, report, summary.exit_code(report))
    summary_written = None
    if not args.dry_run:
        summary_written = after_run.write_site_data(settings.require_site(), settings, report)
    if notifier is not None and not args.dry_run:
        notifier.tell(run_events(settings, report, summary_written))
    if args.json:
        print(json.dumps(summary.as_dict(report), indent=2))
    else:
        print(summary.as_text(report), file=sys.stderr if args.dry_run else sys.stdout)
    if args.commit and not args.dry_run:
        return _commit(settings.require_site(), report, args.push, summary.exit_code(report))
    return summary.exit_code(report)


@contextlib.contextmanager
def _notify_failure(notifier: Notifier | None, settings: Settings) -> Iterator[None]:
    """A run that fails outright (exit 2 or 75: lock, state, ...) is worth a message too."""
    try:
        yield
    except PostrefreshError as exc:
        if notifier is not None and exc.exit_code in STOP_CODES:
            notifier.tell(Events(site=str(settings.site.site), stopped=str(exc)))
        raise


def cmd_notify(args: argparse.Namespace) -> int:
    """`postrefresh notify --test`."""
    notifier = Notifier.from_settings(settings_from(args))
    if notifier is None:
        raise ConfigError('notify is not set: add notify = ["<Apprise URL>", ...] to your settings file')
    sent = notifier.send(Notice(f"{TITLE}: test message",
                                ("This is a test message from `postrefresh notify --test`.",)))
    print(f"test message {'sent to every' if sent else 'NOT delivered to some'} notify target")
    return EXIT_OK if sent else EXIT_SOME_FAILED


def _progress(args: argparse.Namespace) -> contextlib.AbstractContextManager[Progress | None]:
    """A progress bar on a terminal (not with --quiet, nor over a dry run's diff)."""
    if sys.stderr.isatty() and not args.quiet and not args.dry_run:
        from worker.cli.progress import Progress  # tqdm only on a terminal

        return Progress(sys.stderr)
    return contextlib.nullcontext()


def _printer(args: argparse.Namespace) -> Callable[[Outcome], None]:
    def observe(outcome: Outcome) -> None:
        if outcome.status == "bad":
            log.warning("%s", bad_post_line(outcome.path, outcome.reason))
        if args.dry_run and outcome.diff:
            sys.stdout.write(outcome.diff)

    return observe


def cmd_history(args: argparse.Namespace) -> int:
    """`postrefresh history VID`."""
    settings = settings_from(args)
    print(show_history(settings, args.vid_id, as_json=args.json))
    return EXIT_OK


def _configure_logging(args: argparse.Namespace) -> None:
    verbose = getattr(args, "verbose", 0)
    level = logging.WARNING if getattr(args, "quiet", False) else (
        logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if verbose < 2:
        logging.getLogger("httpx").setLevel(logging.WARNING)


def _commit(site: Path, report: RunReport, push: bool, code: int) -> int:
    """`run --commit`: one line saying what was committed; a failed commit or push is exit 75."""
    try:
        done = after_run.commit_run(site, report, push=push)
    except (PushFailed, CommitFailed) as exc:
        print(f"postrefresh: {exc}", file=sys.stderr)
        return code if code == EXIT_USAGE else exc.exit_code
    if done.commit is None:
        print("postrefresh: nothing to commit", file=sys.stderr)
    else:
        pushed = " and pushed" if done.pushed else ""
        print(f"postrefresh: committed {done.commit[:12]}{pushed}: {done.message}", file=sys.stderr)
    return code


