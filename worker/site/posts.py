"""Finding a site's posts and reading the ones that are video posts."""

from __future__ import annotations

import fnmatch
import os
import posixpath
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.errors import PostFormatError
from worker.frontmatter.document import Parsed, parse
from worker.site.paths import SitePaths
from worker.video_id import is_video_id

MAX_POST_BYTES = 10 << 20  # far above any real post; a bigger file is refused
ID_KEYS = ("vid_id", "youtube_id", "video_id", "youtube")  # what themes call it; the first present counts
NEVER_SEARCHED = frozenset({"node_modules", "_site"})  # packages and a built copy of the site, not posts
FileIdentity = tuple[int, int, int]  # (size, mtime_ns, inode): unchanged, so the file is unchanged
ReadHook = Callable[[str, FileIdentity, "Post | None"], None]


def identity_of(info: os.stat_result) -> FileIdentity:
    """The identity of a file from its stat: (size, mtime_ns, inode)."""
    return info.st_size, info.st_mtime_ns, info.st_ino


@dataclass(frozen=True)
class Post:
    """A video post as read: its site-relative path, bytes, parsed form and video id.

    `file` is the real path it was read from, checked inside the site (None when it was parsed
    from bytes alone), so a writer need not resolve it again.
    """

    path: str
    data: bytes
    parsed: Parsed
    vid_id: str
    file: Path | None = None

    @property
    def mapping(self) -> dict[Any, Any]:
        """The front matter's values."""
        return self.parsed.front.mapping


def discover(site: Path, globs: Iterable[str]) -> Iterator[str]:
    """Yield the site-relative paths matching `globs`, lazily (never a list of the site), each once."""
    patterns = list(globs)
    seen: set[str] = set()  # only names a later pattern could match again (none by default)
    for index, pattern in enumerate(patterns):
        later_names = [p.rsplit("/", 1)[-1] for p in patterns[index + 1:]]
        for rel in _matching(site, pattern):
            if rel in seen:
                continue
            if any(fnmatch.fnmatch(rel.rsplit("/", 1)[-1], name) for name in later_names):
                seen.add(rel)
            yield rel


def _matching(site: Path, pattern: str) -> Iterator[str]:
    # Path.glob("**") keeps a set of every path it yielded and lists whole folders: on a
    # 100,000-post site that is tens of MB. "dir/**/name" and "dir/name" are walked with
    # streaming scandir instead; any other pattern falls back to Path.glob.
    head, _, name = pattern.rpartition("/")
    recursive = head.endswith("**")
    base = head.removesuffix("**").rstrip("/") if recursive else head
    if any(c in base for c in "*?[") or any(c in name for c in "/"):
        for path in site.glob(pattern):
            yield path.relative_to(site).as_posix()
        return
    # (folder on disk, its site-relative path): names are joined, not os.path.relpath'd (10x dearer)
    folders = [(os.path.join(site, base), posixpath.normpath(base)) if base else (str(site), ".")]
    while folders:
        folder, rel = folders.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    entry_rel = entry.name if rel == "." else f"{rel}/{entry.name}"
                    searched = not entry.name.startswith(".") and entry.name not in NEVER_SEARCHED
                    if recursive and searched and entry.is_dir(follow_symlinks=False):
                        folders.append((entry.path, entry_rel))  # symlinked folders are not followed
                    if fnmatch.fnmatchcase(entry.name, name):
                        yield entry_rel
        except (FileNotFoundError, NotADirectoryError):
            continue


@dataclass
class PostCounts:
    """What `video_posts` saw: video posts, other posts, bad posts."""

    seen: int = 0
    not_video: int = 0
    bad: int = 0


def video_posts(site: Path, paths: Iterable[str], *, on_bad: Callable[[str, str], None] | None = None,
                counts: PostCounts | None = None, on_read: ReadHook | None = None,
                id_key: str | None = None) -> Iterator[Post]:
    """Yield the video posts among `paths`, skipping the others; `on_bad(path, reason)` hears each bad one.

    `id_key` is the front-matter key of the video id (see `video_id_of`).

    `on_read(path, identity, post or None)` hears each file read, video post or not (not one
    whose bytes could not be read). Each folder on the way is checked for symlinks once.
    """
    counts = PostCounts() if counts is None else counts
    folders = SitePaths(site)
    for rel in paths:
        identity: FileIdentity | None = None
        try:
            file, data, identity = _read(site, folders, rel)
            post = parse_post(rel, data, id_key, file=file)
        except PostFormatError as exc:
            counts.bad += 1
            if on_bad is not None:
                on_bad(rel, str(exc))
            if on_read is not None and identity is not None:
                on_read(rel, identity, None)
            continue
        if on_read is not None:
            on_read(rel, identity, post)
        if post is None:
            counts.not_video += 1
            continue
        counts.seen += 1
        yield post


def _read(site: Path, folders: SitePaths, rel: str) -> tuple[Path, bytes, FileIdentity]:
    path, info = folders.locate(rel)
    try:
        return (path, *read_checked(path, info))
    except FileNotFoundError:
        if os.path.islink(site / rel):
            raise PostFormatError("is a symlink to a file that does not exist (dangling); not read") from None
        raise PostFormatError("file disappeared before it could be read") from None
    except OSError as exc:
        raise PostFormatError(f"cannot read file: {exc.strerror}") from None


def read_regular(path: Path) -> bytes:
    """The bytes of `path` if it is a regular file of at most MAX_POST_BYTES; PostFormatError if not."""
    return read_checked(path)[0]


def read_checked(path: Path, info: os.stat_result | None = None) -> tuple[bytes, FileIdentity]:
    """The one checked reader: `path`'s bytes and identity, if it is a regular file of at most MAX_POST_BYTES.

    Nothing else is ever opened: a FIFO would block the run forever and a device would be
    read until memory runs out. The type is checked before the open (a device is not even
    opened) and again on the open file (it may have been swapped meanwhile); the open never
    blocks, and the read stops one byte past the limit. The identity is the open file's.
    `info` is `path`'s stat when the caller has just taken it.
    """
    _refuse_unless_regular(info or path.stat())
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        _refuse_unless_regular(info)
        chunks, left = [], MAX_POST_BYTES + 1
        step = info.st_size + 4096  # more than its size: one read, then EOF (unless it grew)
        while left and (chunk := os.read(fd, min(left, step))):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    if not left:
        raise _too_big()
    return b"".join(chunks), identity_of(info)


_NOT_REGULAR = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"))


def _refuse_unless_regular(info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _NOT_REGULAR if test(info.st_mode)), "a special file")
        raise PostFormatError(f"is {kind}, not a regular post file; not read")
    if info.st_size > MAX_POST_BYTES:
        raise _too_big()


def _too_big() -> PostFormatError:
    return PostFormatError(f"file is larger than the {MAX_POST_BYTES >> 20} MiB a post may have; not read")


def parse_post(rel: str, data: bytes, id_key: str | None = None, *, file: Path | None = None) -> Post | None:
    """Parse a post's bytes (read from `file`); None when it is not a video post (no video id)."""
    parsed = parse(data)
    found = video_id_of(parsed.front.mapping, id_key)
    if found is None:
        return None
    key, vid_id = found
    if not is_video_id(vid_id):
        shown = repr(vid_id)[:40]
        hint = "" if key in (id_key, ID_KEYS[0]) else " (set id_key if the video id is under another key)"
        raise PostFormatError(f"{key} {shown} is not an 11-character YouTube id{hint}")
    return Post(path=rel, data=data, parsed=parsed, vid_id=vid_id, file=file)


def video_id_of(mapping: Mapping[Any, Any], id_key: str | None) -> tuple[str, Any] | None:
    """(key, value) of a post's video id, the one place a post's id is read; None when it has none.

    `id_key` names the key (`params.video_id`: `video_id` in the table `params`); None takes
    the first of ID_KEYS the post has.
    """
    for key in (id_key,) if id_key else ID_KEYS:
        value: Any = mapping
        for part in key.split("."):
            if not isinstance(value, Mapping) or part not in value:
                break
            value = value[part]
        else:
            return key, value
    return None
