"""Finding a site's posts and reading the ones that are video posts."""

from __future__ import annotations

import fnmatch
import functools
import itertools
import os
import posixpath
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.errors import ConfigError, PostFormatError
from worker.frontmatter.document import Parsed, parse
from worker.video_id import is_video_id

MAX_POST_BYTES = 10 << 20  # far above any real post; a bigger file is refused
VIDEO_KEY = "vid_id"


@dataclass(frozen=True)
class Post:
    """A video post as read: its site-relative path, bytes, parsed form and video id."""

    path: str
    data: bytes
    parsed: Parsed
    vid_id: str

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
                    if recursive and not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                        folders.append((entry.path, entry_rel))  # symlinked folders are not followed
                    if fnmatch.fnmatchcase(entry.name, name):
                        yield entry_rel
        except (FileNotFoundError, NotADirectoryError):
            continue


def display(rel: str) -> str:
    """A path safe to print, whatever bytes its name holds."""
    return os.fsencode(rel).decode("utf-8", "replace")


def posts_folders(globs: Iterable[str]) -> list[str]:
    """The site-relative folders the globs search ("_posts" for "_posts/**/*.md"; "" for the site)."""
    folders = []
    for pattern in globs:
        parts = pattern.split("/")[:-1]
        fixed = list(itertools.takewhile(lambda part: not any(c in part for c in "*?["), parts))
        folders.append("/".join(fixed))
    return list(dict.fromkeys(folders))


def require_posts_folder(site: Path, globs: Iterable[str]) -> None:
    """ConfigError unless the site holds one of its posts folders: a folder that is not a site."""
    folders = posts_folders(globs)
    if not any((site / folder).is_dir() for folder in folders):
        names = " or ".join(f"{folder}/" for folder in folders)
        raise ConfigError(f"{site} is not a Jekyll site: it has no {names} folder; pass the site's "
                          "own folder with --site (or set posts_globs)")


def site_relative(site: Path, given: str) -> str:
    """A post path from the command line, relative to the site.

    It is read as the site's path first (`_posts/x.md` from any folder); failing that, as a
    path from the current folder, which must lie inside the site. ConfigError if it is in
    neither place.
    """
    root = Path(os.path.normpath(site.absolute()))
    candidates = [Path(given)] if os.path.isabs(given) else [root / given, Path(given).absolute()]
    for path in (Path(os.path.normpath(c)) for c in candidates):
        if os.path.lexists(path):
            if not path.is_relative_to(root):
                raise ConfigError(f"{given} is not inside the site {site}")
            return path.relative_to(root).as_posix()
    raise ConfigError(f"no such post: {given} (neither in the site {site} nor in the current folder)")


def resolve_in_site(site: Path, rel: str) -> Path:
    """The real path of `rel`; PostFormatError if it (or a symlink on the way) leaves the site."""
    root = _real_root(site)
    path = root / rel
    if ".." in path.parts[len(root.parts):] or _has_symlink(root, rel):
        try:
            path = path.resolve()
        except (RuntimeError, OSError):  # Python 3.11 raises RuntimeError on a symlink loop
            raise PostFormatError("is a symlink loop; not read") from None
    if not path.is_relative_to(root):
        raise PostFormatError("path leads outside the site (symlink or '..'); refused")
    return path


@functools.lru_cache(maxsize=16)
def _real_root(site: Path) -> Path:
    return site.resolve()


def _has_symlink(root: Path, rel: str) -> bool:
    # Cheaper than resolve() on every post: only the components inside the site are checked.
    current = root
    for part in Path(rel).parts:
        current = current / part
        try:
            if stat.S_ISLNK(current.lstat().st_mode):
                return True
        except FileNotFoundError:
            return False
    return False


def read_post(site: Path, rel: str) -> Post | None:
    """Read one post; None when it has no `vid_id` (not a video post), PostFormatError if bad."""
    path = resolve_in_site(site, rel)
    try:
        data = read_regular(path)
    except FileNotFoundError:
        if os.path.islink(site / rel):
            raise PostFormatError("is a symlink to a file that does not exist (dangling); not read") from None
        raise PostFormatError("file disappeared before it could be read") from None
    except OSError as exc:
        raise PostFormatError(f"cannot read file: {exc.strerror}") from None
    return parse_post(rel, data)


def read_regular(path: Path) -> bytes:
    """The bytes of `path` if it is a regular file of at most MAX_POST_BYTES; PostFormatError if not.

    Nothing else is ever opened: a FIFO would block the run forever and a device would be
    read until memory runs out. The type is checked before the open (a device is not even
    opened) and again on the open file (it may have been swapped meanwhile); the open never
    blocks, and the read stops one byte past the limit.
    """
    _refuse_unless_regular(path.stat())
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
    return b"".join(chunks)


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


def parse_post(rel: str, data: bytes) -> Post | None:
    """Parse a post's bytes; None when it is not a video post."""
    parsed = parse(data)
    mapping = parsed.front.mapping
    if VIDEO_KEY not in mapping:
        return None
    vid_id = mapping[VIDEO_KEY]
    if not is_video_id(vid_id):
        shown = repr(vid_id)[:40]
        raise PostFormatError(f"vid_id {shown} is not an 11-character YouTube id")
    return Post(path=rel, data=data, parsed=parsed, vid_id=vid_id)
