"""The I/O floors: read every post and write it back durably, with no parsing and no network.

Both modes give the same durability (every post's data and rename on disk before the run ends,
readers never see a torn file), so the gap between either and a refresher is everything else:

- sequential: what a careful script does, one post after another: temp file beside the post,
  fsync, os.replace, fsync of the folder.
- concurrent: per batch of 50 posts (run's batch): write the temp files, fsync them at once from
  a pool of `--threads` threads (ext4 commits concurrent fsyncs in one journal transaction),
  rename each, then fsync each folder of the batch once.

    python bench/io_floor.py --site DIR [--mode sequential|concurrent] [--threads 16] [--batch 50]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

POST_SUFFIXES = (".md", ".markdown")
MODES = ("sequential", "concurrent")
BATCH = 50  # postrefresh's videos.list batch: one edit-and-write batch per call


def iter_posts(site: Path) -> Iterator[Path]:
    """Every post file under `site/_posts/`, in a stable order."""
    for path in sorted((site / "_posts").rglob("*")):
        if path.suffix in POST_SUFFIXES and path.is_file():
            yield path


def batches(paths: Iterator[Path], size: int) -> Iterator[list[Path]]:
    """`paths` in lists of `size` (the last one shorter)."""
    while chunk := list(itertools.islice(paths, size)):
        yield chunk


def write_temp(path: Path, data: bytes) -> tuple[int, str]:
    """A temp file beside `path` holding `data`, not yet fsynced: its open fd and name."""
    fd, tmp_name = tempfile.mkstemp(prefix=".io-floor-", suffix=".tmp", dir=path.parent)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        os.unlink(tmp_name)
        raise
    return fd, tmp_name


def fsync_directory(directory: Path) -> None:
    """Make the renames in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_sequentially(path: Path) -> None:
    """Rewrite one post durably on its own: temp file, fsync, rename, folder fsync."""
    fd, tmp_name = write_temp(path, path.read_bytes())
    try:
        os.fsync(fd)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    finally:
        os.close(fd)
    fsync_directory(path.parent)


def write_batch(paths: list[Path], pool: ThreadPoolExecutor) -> None:
    """Rewrite a batch durably: every temp file, their fsyncs at once, the renames, each folder once."""
    temps: list[tuple[int, str]] = []
    try:
        for path in paths:
            temps.append(write_temp(path, path.read_bytes()))
        list(pool.map(os.fsync, [fd for fd, _ in temps]))  # list(): re-raise any fsync's error
        for path, (_, tmp_name) in zip(paths, temps, strict=True):
            os.replace(tmp_name, path)
    except BaseException:
        for _, tmp_name in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
        raise
    finally:
        for fd, _ in temps:
            os.close(fd)
    for folder in dict.fromkeys(path.parent for path in paths):
        fsync_directory(folder)


def run(site: Path, mode: str = "sequential", threads: int = 16, batch: int = BATCH) -> dict[str, object]:
    """Read and durably rewrite every post of `site` in `mode`; return {mode, threads, posts, seconds}."""
    started = time.perf_counter()
    posts = 0
    if mode == "sequential":
        for path in iter_posts(site):
            write_sequentially(path)
            posts += 1
    else:
        with ThreadPoolExecutor(threads) as pool:
            for chunk in batches(iter_posts(site), batch):
                write_batch(chunk, pool)
                posts += len(chunk)
    return {"mode": mode, "threads": threads if mode == "concurrent" else 1, "posts": posts,
            "seconds": round(time.perf_counter() - started, 3)}


def main(argv: list[str] | None = None) -> int:
    """CLI: measure one floor and print a one-line JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, required=True, help="site root holding _posts/")
    parser.add_argument("--mode", choices=MODES, default="sequential", help="which floor")
    parser.add_argument("--threads", type=int, default=16, help="fsync threads (concurrent mode)")
    parser.add_argument("--batch", type=int, default=BATCH, help="posts per batch (concurrent mode)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.site, args.mode, args.threads, args.batch)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
