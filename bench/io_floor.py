"""The I/O floor: read every post and write it back durably, with no parsing and no network.

Each write is what a careful writer does (temp file beside the post, fsync, os.replace, fsync
of the folder), so the gap between this and a refresher is the cost of everything else.

    python bench/io_floor.py --site DIR
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

POST_SUFFIXES = (".md", ".markdown")


def iter_posts(site: Path) -> Iterator[Path]:
    """Every post file under `site/_posts/`, in a stable order."""
    for path in sorted((site / "_posts").rglob("*")):
        if path.suffix in POST_SUFFIXES and path.is_file():
            yield path


def write_durably(path: Path, data: bytes) -> None:
    """Replace `path` with `data` via a fsynced temp file in the same folder and a rename."""
    fd, tmp_name = tempfile.mkstemp(prefix=".io-floor-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run(site: Path) -> dict[str, float]:
    """Read and rewrite every post of `site` in turn; return {posts, seconds}."""
    started = time.perf_counter()
    posts = 0
    for path in iter_posts(site):
        write_durably(path, path.read_bytes())
        posts += 1
    return {"posts": posts, "seconds": round(time.perf_counter() - started, 3)}


def main(argv: list[str] | None = None) -> int:
    """CLI: measure the floor and print a one-line JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, required=True, help="site root holding _posts/")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.site)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
