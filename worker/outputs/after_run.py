"""What a run leaves in the site besides its posts: the summary file, and the commit of what it wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worker.outputs.site_data import write_summary
from worker.refresh.pipeline import RunReport
from worker.settings import Settings
from worker.site import git
from worker.site.paths import summary_file


def write_site_data(site: Path, settings: Settings, report: RunReport) -> dict[str, Any] | None:
    """Rewrite the summary file (`data_dir`/summary.json) after a run that wrote or could have written.

    Not after an interrupted run, nor one stopped (say, by a rejected key) before it wrote anything.
    Returns the summary when it was written.
    """
    stopped_idle = report.stopped is not None and not report.wrote
    if report.interrupted or stopped_idle:
        return None
    return refresh_summary(site, settings, report.written)


def refresh_summary(site: Path, settings: Settings, written: dict[str, str]) -> dict[str, Any] | None:
    """Rewrite the summary file if `site_summary` is on, and add it to `written` (path -> kind) if it
    changed; returns the summary when it was written (a run's end, and each Celery scan)."""
    if not settings.site.site_summary:
        return None
    summary = write_summary(site, settings)
    if summary is not None:
        written[summary_file(settings.site.data_dir)] = git.SUMMARY
    return summary


def commit_run(site: Path, report: RunReport, *, push: bool) -> git.Published:
    """Commit the files the run wrote (nothing when interrupted: the user asked it to stop)."""
    if report.interrupted:
        return git.Published(None, "")
    return git.publish(site, report.written, push=push)
