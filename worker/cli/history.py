"""`postrefresh history`: one video's time series, as a table or JSON."""

from __future__ import annotations

import json

from worker.errors import ConfigError
from worker.refresh.changes import STATUS
from worker.settings import Settings
from worker.site import history
from worker.site.posts import Post, discover, video_posts
from worker.site.state import SiteState, has_state
from worker.video_id import is_video_id


def show_history(settings: Settings, vid_id: str, *, as_json: bool) -> str:
    """The series of every mapped field of `vid_id`, oldest first."""
    if not is_video_id(vid_id):
        raise ConfigError(f"{vid_id!r} is not an 11-character YouTube video id")
    site = settings.require_site()
    post = _find_post(settings, vid_id)
    fields = [*settings.site.fields, *settings.site.fill_empty, STATUS]
    points = history.series(site, settings.site.history_dir, vid_id, post.mapping, fields)
    if as_json:
        return json.dumps({"vid_id": vid_id, "post": post.path,
                           "points": [{"at": at, "field": f, "value": v} for at, f, v in points]},
                          indent=2, ensure_ascii=False)
    return _table(points)


def _find_post(settings: Settings, vid_id: str) -> Post:
    site = settings.require_site()
    known: list[str] = []
    if has_state(site):
        with SiteState(site) as state:
            known = state.paths_of(vid_id)
    # a broken post elsewhere must not hide this video's history
    for post in video_posts(site, [*known, *discover(site, settings.site.posts_globs)],
                            id_key=settings.site.id_key):
        if post.vid_id == vid_id:
            return post
    raise ConfigError(f"no post in {site} has vid_id {vid_id}")


def _table(points: list[tuple[str, str, str | None]]) -> str:
    fields = list(dict.fromkeys(field for _, field, _ in points))
    times = list(dict.fromkeys(at for at, _, _ in points))
    cells = {(at, field): "" if value is None else value for at, field, value in points}
    rows = [["at", *fields]] + [[at or "?", *(cells.get((at, f), "") for f in fields)] for at in times]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)
