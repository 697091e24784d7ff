"""The closing summary of a run, as text for people or JSON for scripts, and its exit code."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from worker.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE
from worker.refresh.pipeline import RunReport


def exit_code(report: RunReport) -> int:
    """2 over 75 over 1 over 0 (and 130 when interrupted); a stop's code is its error's."""
    if report.stopped is not None and report.stopped.exit_code == EXIT_USAGE:
        return EXIT_USAGE  # a rejected key is worth fixing even when the run was interrupted
    if report.interrupted:
        return EXIT_INTERRUPTED
    if report.stopped is not None:
        return report.stopped.exit_code
    if report.bad or report.counts.get("gone"):
        return EXIT_SOME_FAILED
    return EXIT_OK


def as_dict(report: RunReport) -> dict[str, Any]:
    """The summary as plain JSON-ready data."""
    meter = report.meter
    return {
        "seen": report.seen,
        "refreshed": report.counts.get("refreshed", 0),
        "unchanged": report.counts.get("unchanged", 0),
        "held_by_min_change": report.counts.get("held", 0),
        "unavailable": report.counts.get("unavailable", 0),
        "gone": report.counts.get("gone", 0),
        "bad": [{"path": path, "reason": reason} for path, reason in report.bad],
        "not_reached": report.not_reached,
        "not_video_posts": report.not_video,
        "fresh_skipped": report.fresh,
        "api_calls": meter.calls,
        "api_retries": meter.retries,
        "quota_units": meter.units,
        "units_per_post": round(meter.units / report.seen, 4) if report.seen else 0.0,
        "thumbnails_fetched": report.thumbnails_stored,
        "thumbnails_unchanged": report.thumbnails_unchanged,
        "thumbnail_failures": report.thumbnail_failures,
        "dislikes": dataclasses.asdict(report.dislikes) if report.dislikes else None,
        "stopped_because": str(report.stopped) if report.stopped else None,
        "interrupted": report.interrupted,
        "dry_run": report.dry_run,
        "seconds": round(report.seconds, 3),
        "exit_code": exit_code(report),
    }


def as_text(report: RunReport) -> str:
    """A few lines a person reads at the end of a run."""
    d = as_dict(report)
    lines = [
        f"posts seen: {d['seen']}  refreshed: {d['refreshed']}  unchanged: {d['unchanged']}  "
        f"unavailable: {d['unavailable']}  bad: {len(d['bad'])}  not reached: {d['not_reached']}",
        f"skipped: {d['not_video_posts']} not video posts, {d['fresh_skipped']} refreshed recently",
        *([f"left as they are: {d['held_by_min_change']} posts moved less than min_change"]
          if d["held_by_min_change"] else []),
        f"API: {d['api_calls']} calls ({d['api_retries']} retries), {d['quota_units']} quota units"
        f" ({d['units_per_post']} per post)",
        f"thumbnails: {d['thumbnails_fetched']} fetched, {d['thumbnails_unchanged']} unchanged,"
        f" {d['thumbnail_failures']} failed",
    ]
    if report.dislikes is not None:
        lines.append(dislikes_line(report))
    lines += [f"bad: {item['path']}: {item['reason']}" for item in d["bad"]]
    if report.counts.get("gone"):
        lines.append(f"gone: {d['gone']} posts were deleted, renamed or changed while queued")
    if d["stopped_because"]:
        lines.append(f"stopped early: {d['stopped_because']}")
    if report.interrupted:
        lines.append("interrupted: finished the writes in progress, then stopped")
    if report.dry_run:
        lines.append("dry run: nothing was written; the counts say what a run would have done")
    lines.append(f"time: {_seconds(report.seconds)}")
    return "\n".join(lines)


def dislikes_line(report: RunReport) -> str:
    """E.g. "dislikes: 120 fetched, 9,880 wait for tomorrow's limit"."""
    meter = report.dislikes
    if meter is None:
        return "dislikes: off"
    line = f"dislikes: {meter.fetched:,} fetched"
    if meter.no_value or meter.failed:
        line += f", {meter.no_value:,} without an estimate, {meter.failed:,} failed"
    if meter.waiting:
        line += f", {meter.waiting:,} wait for tomorrow's limit"
    return line


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f}s"
    minutes = math.floor(value / 60)
    return f"{minutes}m{value - 60 * minutes:04.1f}s"
