"""Where things are in a site: post paths given or shown, the posts folders, the files written."""

from __future__ import annotations

import functools
import itertools
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from worker.errors import ConfigError, PostFormatError


def display(rel: str) -> str:
    """A path safe to print, whatever bytes its name holds."""
    return os.fsencode(rel).decode("utf-8", "replace")


def bad_post_line(rel: str, reason: str) -> str:
    """The one line that reports a bad post: `bad post <path>: <reason>`."""
    return f"bad post {display(rel)}: {reason}"


def posts_folders(globs: Iterable[str]) -> list[str]:
    """The site-relative folders the globs search ("_posts" for "_posts/**/*.md"; "" for the site)."""
    folders = []
    for pattern in globs:
        parts = pattern.split("/")[:-1]
        fixed = list(itertools.takewhile(lambda part: not any(c in part for c in "*?["), parts))
        folders.append("/".join(fixed))
    return list(dict.fromkeys(folders))


def require_posts_folder(site: Path, generator: str, globs: Iterable[str]) -> None:
    """ConfigError unless the site holds one of its posts folders: a folder that is not a site."""
    folders = posts_folders(globs)
    if not any((site / folder).is_dir() for folder in folders):
        names = " or ".join(f"{folder}/" for folder in folders)
        kind = generator.capitalize()
        raise ConfigError(f"{site} is not a {kind} site: it has no {names} folder; pass the "
                          "site's own folder with --site (or set generator or posts_globs)")


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
    return SitePaths(site).resolve(rel)


class SitePaths:
    """Resolves post paths inside one site, checking each folder on the way for symlinks once.

    Use one for one pass over the site (a run, a summary): a folder swapped for a symlink
    after it was checked is seen by the next pass. The file itself is checked every time.
    """

    MAX_FOLDERS = 4096  # more than a site has; past it the checks start over (memory stays flat)

    def __init__(self, site: Path) -> None:
        self.root = _real_root(site)
        self._plain: dict[tuple[str, ...], bool] = {}  # folder parts -> no symlink on the way

    def resolve(self, rel: str) -> Path:
        """The real path of `rel`; PostFormatError if it (or a symlink on the way) leaves the site."""
        return self.locate(rel)[0]

    def locate(self, rel: str) -> tuple[Path, os.stat_result | None]:
        """`resolve(rel)`, and the file's stat when the check took it (it is no symlink), else None."""
        root = self.root
        path = root / rel
        parts = path.parts[len(root.parts):]
        info = None
        plain = ".." not in parts and self._plain_folder(parts[:-1])
        if plain:
            info = _lstat(path)
            plain = info is None or not stat.S_ISLNK(info.st_mode)
        if not plain:
            info = None
            try:
                path = path.resolve()
            except (RuntimeError, OSError):  # Python 3.11 raises RuntimeError on a symlink loop
                raise PostFormatError("is a symlink loop; not read") from None
        if not path.is_relative_to(root):
            raise PostFormatError("path leads outside the site (symlink or '..'); refused")
        return path, info

    def _plain_folder(self, parts: tuple[str, ...]) -> bool:
        if not parts:
            return True
        plain = self._plain.get(parts)
        if plain is None:
            info = _lstat(self.root.joinpath(*parts))
            plain = self._plain_folder(parts[:-1]) and not (info is not None and stat.S_ISLNK(info.st_mode))
            if info is not None:  # a missing folder is not remembered: it may yet appear
                if len(self._plain) >= self.MAX_FOLDERS:
                    self._plain.clear()
                self._plain[parts] = plain
        return plain


@functools.lru_cache(maxsize=16)
def _real_root(site: Path) -> Path:
    return site.resolve()


def _lstat(path: Path) -> os.stat_result | None:
    """The stat of `path` itself (not a symlink's target); None if it does not exist (a read says why)."""
    try:
        return path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return None


STATE_DIR = ".postrefresh"  # the site's private folder (site/state.py makes it, with its .gitignore)
STATE_DB = f"{STATE_DIR}/state.db"
LOCKS_DIR = f"{STATE_DIR}/locks"  # the per-file lock stripes (site/files.py: free_file_locks)


def history_file(history_dir: str, vid_id: str) -> str:
    """The site-relative path of a video's history CSV (`_data/postrefresh/<vid_id>.csv`)."""
    return f"{history_dir.strip('/')}/{vid_id}.csv"


def summary_file(data_dir: str) -> str:
    """The site-relative path of the site's summary (`_data/postrefresh/summary.json`)."""
    return f"{data_dir.strip('/')}/summary.json"


def thumbnail_folder(thumbnail_dir: str) -> str:
    """The site-relative folder of the thumbnails (`thumbnail_dir`, always inside the site)."""
    return thumbnail_dir.strip("/")


def thumbnail_file(thumbnail_dir: str, vid_id: str) -> str:
    """The site-relative path of a stored thumbnail (`assets/thumbnails/<vid_id>.jpg`)."""
    return f"{thumbnail_folder(thumbnail_dir)}/{vid_id}.jpg"
