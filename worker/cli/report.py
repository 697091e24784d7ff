"""`postrefresh report --out FILE`: the site's history as one HTML page."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from worker.cli.common import settings_from
from worker.errors import EXIT_OK, EXIT_SOME_FAILED
from worker.outputs.report.collect import write_report
from worker.site.paths import bad_post_line


def add_report_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `postrefresh report`."""
    report = sub.add_parser("report", parents=[common], help="write the site's history as one HTML page",
                            description="Write one self-contained HTML page of every video's history "
                                        "(searchable table, sparklines, top risers, quota per day); "
                                        "bad posts are listed, one line each, and make the exit code 1.")
    report.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    report.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    """`postrefresh report --out FILE`."""
    settings = settings_from(args)
    started = time.monotonic()
    data = write_report(settings, args.out)
    for item in data.unreadable_posts:
        print(f"postrefresh: {bad_post_line(item['path'], item['reason'])}", file=sys.stderr)
    if data.unreadable > len(data.unreadable_posts):
        print(f"postrefresh: and {data.unreadable - len(data.unreadable_posts)} more bad posts",
              file=sys.stderr)
    print(f"wrote {args.out}: {len(data.rows)} videos, {data.unreadable} unreadable posts, "
          f"{time.monotonic() - started:.1f} s")
    return EXIT_SOME_FAILED if data.unreadable else EXIT_OK
