"""A site's thumbnails on disk: where each lives and its refresh with the validators kept in state."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from worker.api.thumbnails import ThumbnailResult, Validators, refresh_thumbnail
from worker.errors import ThumbnailError
from worker.settings import Settings
from worker.site import git
from worker.site.paths import thumbnail_file
from worker.site.state import SiteState


@dataclass(frozen=True)
class Refreshed:
    """One thumbnail's refresh: stored, unchanged, absent, or failed (`error` says why; the
    previous file is kept)."""

    vid_id: str
    status: str
    bytes_written: int = 0
    error: str = ""


def thumbnail_path(site: Path, settings: Settings, vid_id: str) -> Path:
    """Where the thumbnail of `vid_id` is stored in the site."""
    return site / thumbnail_file(settings.thumbnails.dir, vid_id)


def thumbnail_url(settings: Settings, vid_id: str) -> str:
    """The site URL of a stored thumbnail (under `thumbnail_public_path`), for the opt-in `image` rewrite."""
    return f"{settings.thumbnail_public_path}{vid_id}.jpg"


async def update_thumbnail(http: httpx.AsyncClient, state: SiteState, site: Path, vid_id: str,
                           settings: Settings) -> ThumbnailResult:
    """Refresh one thumbnail with a conditional GET; ThumbnailError leaves the old file in place."""
    target = thumbnail_path(site, settings, vid_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    etag, modified, size = state.thumbnail_validators(vid_id)
    previous = Validators(etag, modified, size) if target.exists() and (etag or modified) else None
    result = await refresh_thumbnail(
        http, base_url=settings.thumbnails.url, vid_id=vid_id, sizes=settings.thumbnails.sizes,
        target=target, previous=previous, max_bytes=settings.thumbnails.max_bytes,
        attempts=settings.api.retry_attempts, max_wait=settings.api.retry_max_wait)
    if result.status == "stored":
        stored = result.validators or Validators(None, None)
        state.set_thumbnail_validators(vid_id, stored.etag, stored.last_modified, result.size)
    return result


async def update_thumbnails(http: httpx.AsyncClient, state: SiteState, site: Path, settings: Settings,
                            vid_ids: Iterable[str], slots: asyncio.Semaphore) -> list[Refreshed]:
    """Refresh thumbnails, as many at once as `slots` lets; a failure keeps the previous file."""

    async def one(vid_id: str) -> Refreshed:
        async with slots:
            try:
                result = await update_thumbnail(http, state, site, vid_id, settings)
            except (ThumbnailError, OSError) as exc:
                return Refreshed(vid_id, "failed", error=str(exc))
        return Refreshed(vid_id, result.status, result.bytes_written)

    return list(await asyncio.gather(*(one(vid) for vid in vid_ids)))


def stored_files(settings: Settings, refreshed: Iterable[Refreshed]) -> dict[str, str]:
    """The thumbnail files a refresh wrote, as a commit lists them (site-relative path -> kind)."""
    return {thumbnail_file(settings.thumbnails.dir, r.vid_id): git.THUMBNAIL
            for r in refreshed if r.status == "stored"}
