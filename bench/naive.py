"""The naive refresher the benchmark compares against: one videos.list call per post, in turn.

It is what a site owner would write first: python-frontmatter to read and re-dump each post
(which re-quotes, re-orders and re-wraps the front matter), a plain overwrite, no batching.

    python bench/naive.py --site DIR --api-url URL --key KEY [--limit N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import frontmatter
import httpx

POST_SUFFIXES = (".md", ".markdown")


def iter_posts(site: Path) -> Iterator[Path]:
    """Every post file under `site/_posts/`, in a stable order."""
    for path in sorted((site / "_posts").rglob("*")):
        if path.suffix in POST_SUFFIXES and path.is_file():
            yield path


def fetch_statistics(client: httpx.Client, vid_id: str) -> dict[str, Any] | None:
    """The `statistics` part of one video, or None when the API does not return it."""
    response = client.get("/videos", params={"part": "statistics", "id": vid_id})
    response.raise_for_status()
    items = response.json().get("items", [])
    return items[0].get("statistics") if items else None


def refresh_post(client: httpx.Client, path: Path) -> int:
    """Refresh one post's viewcount and likeCount; return the number of API calls made."""
    post = frontmatter.load(path)
    vid_id = post.get("vid_id")
    if not isinstance(vid_id, str):
        return 0
    stats = fetch_statistics(client, vid_id)
    if stats is not None:
        post["viewcount"] = stats.get("viewCount", "")
        post["likeCount"] = stats.get("likeCount", "")
        path.write_text(frontmatter.dumps(post) + "\n", encoding="utf-8")
    return 1


def run(site: Path, api_url: str, key: str, limit: int | None = None) -> dict[str, float]:
    """Refresh up to `limit` posts of `site`; return {posts, calls, seconds}."""
    started = time.perf_counter()
    posts = calls = 0
    headers = {"X-Goog-Api-Key": key}
    with httpx.Client(base_url=api_url, headers=headers, timeout=10.0) as client:
        for path in itertools.islice(iter_posts(site), limit):
            calls += refresh_post(client, path)
            posts += 1
    return {"posts": posts, "calls": calls, "seconds": round(time.perf_counter() - started, 3)}


def main(argv: list[str] | None = None) -> int:
    """CLI: run the naive refresh and print a one-line JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, required=True, help="site root holding _posts/")
    parser.add_argument("--api-url", required=True, help="e.g. http://127.0.0.1:8000/youtube/v3")
    parser.add_argument("--key", required=True, help="API key, sent in X-Goog-Api-Key")
    parser.add_argument("--limit", type=int, default=None, help="stop after N post files")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.site, args.api_url.rstrip("/"), args.key, args.limit)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
