"""A site's thumbnails on disk: where each lives and its refresh with the validators kept in state."""

from __future__ import annotations

from pathlib import Path

import httpx

from worker.api.thumbnails import ThumbnailResult, Validators, refresh_thumbnail
from worker.settings import Settings
from worker.site.paths import thumbnail_file
from worker.site.state import SiteState


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
