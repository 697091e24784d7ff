"""One refresh of a site, as `postrefresh run` and the demo make it: check, lock, sweep, run the pipeline."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from worker.api.http import make_http_client
from worker.errors import ConfigError
from worker.refresh.pipeline import Pipeline, RunOptions, RunReport
from worker.refresh.write import Outcome, sweep_site
from worker.settings import Settings
from worker.site.paths import require_posts_folder, site_relative
from worker.site.posts import discover
from worker.site.state import SiteState


class Tracker(Protocol):
    """Watches the paths go by (the CLI's progress bar); `count` gives the total when it can."""

    def track(self, paths: Iterable[str], count: Callable[[], int]) -> Iterable[str]: ...


def run_site(settings: Settings, options: RunOptions, observer: Callable[[Outcome], None],
             progress: Tracker | None = None) -> RunReport:
    """Check the configuration, take the site's run lock and refresh it."""
    site = site_to_refresh(settings)
    if not settings.api.key:
        raise ConfigError("YOUTUBE_API_KEY is not set: export it (the key goes in a header only)")
    candidates = [site_relative(site, p) for p in options.paths] if options.paths else None
    with SiteState(site) as state, state.run_lock():
        if not options.dry_run:
            sweep_site(site, settings)
        report = asyncio.run(_run(settings, site, state, options, observer, candidates, progress))
        report.became_bad = state.new_problems(report.bad)
        if not options.dry_run and candidates is None and report.stopped is None and not report.interrupted:
            state.replace_problems(report.bad)  # only a full run sees every post
        return report


def site_to_refresh(settings: Settings) -> Path:
    """The site folder, refused (ConfigError) before anything is written if it holds no posts folder."""
    site = settings.require_site()
    require_posts_folder(site, settings.site.generator, settings.site.posts_globs)
    return site


async def _run(settings: Settings, site: Path, state: SiteState, options: RunOptions,
               observer: Callable[[Outcome], None], candidates: list[str] | None,
               progress: Tracker | None) -> RunReport:
    async with make_http_client(settings) as http:
        pipeline = Pipeline(settings, site, state, http, options, observer)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, pipeline.interrupt)
        try:
            paths: Iterable[str] = (discover(site, settings.site.posts_globs) if candidates is None
                                    else candidates)
            if progress is not None:
                paths = progress.track(paths, lambda: _count(site, settings, candidates))
            return await pipeline.run(paths)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)


def _count(site: Path, settings: Settings, candidates: list[str] | None) -> int:
    if candidates is not None:
        return len(candidates)
    return sum(1 for _ in discover(site, settings.site.posts_globs))
