"""Committing (and pushing) exactly the files postrefresh wrote, with plain `git`.

Only the paths postrefresh wrote are staged (`git add`) and committed (`git commit -- paths`
commits those paths only); a file it did not write never enters the commit. When the index
already holds a staged change to some other file, nothing is done: that change is the
user's, and committing around it would surprise them. Its errors (PublishError, CommitFailed,
PushFailed) are in worker/errors.py.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from worker.errors import CommitFailed, PublishError, PushFailed
from worker.site.paths import history_file

log = logging.getLogger(__name__)

# What postrefresh wrote, as `path -> kind`; the kinds name the parts of the commit message.
REFRESHED, UNAVAILABLE, CSV, THUMBNAIL, SUMMARY = "refreshed", "unavailable", "csv", "thumbnail", "summary"
GIT_TIMEOUT = 300


@dataclass(frozen=True)
class Published:
    """The result of one publish: the commit (None when nothing changed) and what it holds."""

    commit: str | None
    message: str
    paths: tuple[str, ...] = ()
    pushed: bool = False


@dataclass(frozen=True)
class _Repo:
    top: Path
    prefix: str  # the site's folder inside the repository, "" or ending in "/"


def check_ready(site: Path) -> None:
    """Refuse early (PublishError) unless git can commit here: a repo, an identity, no staged changes."""
    repo = _repo(site)
    for ident in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT"):
        try:
            _git(repo.top, "var", ident)
        except PublishError:
            raise PublishError(f"git does not know who commits in {repo.top}: set user.name and "
                               "user.email there (git config user.email you@example.com), "
                               "or leave out --commit / publish_commit") from None
    _refuse_unrelated(_status(repo), set())


def publish(site: Path, written: Mapping[str, str], *, push: bool) -> Published:
    """Commit the written files (site-relative path -> kind) that git sees changed; push if asked."""
    repo = _repo(site)
    wanted = {repo.prefix + path: kind for path, kind in written.items()}
    status = _status(repo)
    _refuse_unrelated(status, set(wanted))
    changed = [path for path in wanted if path in status]
    if not changed:
        return Published(None, "")
    message = commit_message(wanted[path] for path in changed)
    pathspecs = b"".join(os.fsencode(path) + b"\0" for path in changed)
    _git(repo.top, "add", "--pathspec-from-file=-", "--pathspec-file-nul", stdin=pathspecs)
    try:
        _git(repo.top, "commit", "-q", "-m", message, "--pathspec-from-file=-", "--pathspec-file-nul",
             stdin=pathspecs)
    except PublishError as exc:
        # Left staged, these files would make the next publish refuse as "not written by postrefresh".
        _git(repo.top, "reset", "-q", "--pathspec-from-file=-", "--pathspec-file-nul", stdin=pathspecs)
        raise CommitFailed(f"{exc}; nothing is left staged, and the {_plural(len(changed), 'file')} "
                           "written stay uncommitted (git status lists them)") from None
    commit = _git(repo.top, "rev-parse", "HEAD").decode().strip()
    log.info("committed %s: %s", commit[:12], message)
    if push:
        try:
            _git(repo.top, "push", "-q")
        except PublishError as exc:
            raise PushFailed(f"committed {commit[:12]}, but git push failed: {exc}") from None
    return Published(commit, message, tuple(changed), pushed=push)


def commit_message(kinds: Iterable[str]) -> str:
    """`postrefresh: 312 posts refreshed, 3 unavailable` (and thumbnails, history files, summary)."""
    count = Counter(kinds)
    parts = [_plural(count[REFRESHED], "post") + " refreshed", f"{count[UNAVAILABLE]} unavailable"]
    if count[THUMBNAIL]:
        parts.append(_plural(count[THUMBNAIL], "thumbnail"))
    if count[CSV]:
        parts.append(_plural(count[CSV], "history file"))
    if count[SUMMARY]:
        parts.append("summary")
    return "postrefresh: " + ", ".join(parts)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _repo(site: Path) -> _Repo:
    try:
        top = _git(site, "rev-parse", "--show-toplevel")
    except PublishError:
        raise PublishError(f"{site} is not in a git repository: run `git init` there, "
                           "or leave out --commit / publish_commit") from None
    prefix = _git(site, "rev-parse", "--show-prefix")
    return _Repo(Path(os.fsdecode(top.strip())), os.fsdecode(prefix.strip()))


def _status(repo: _Repo) -> dict[str, tuple[str, str]]:
    """Every changed or untracked path of the repository (root-relative) -> (index, worktree) codes."""
    out = _git(repo.top, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames")
    entries: dict[str, tuple[str, str]] = {}
    for record in out.split(b"\0"):
        if len(record) > 3:
            codes = record[:2].decode()
            entries[os.fsdecode(record[3:])] = (codes[0], codes[1])
    return entries


def _refuse_unrelated(status: Mapping[str, tuple[str, str]], ours: set[str]) -> None:
    staged = sorted(path for path, (index, _) in status.items() if index not in " ?!" and path not in ours)
    if staged:
        more = f" (and {len(staged) - 1} more)" if len(staged) > 1 else ""
        raise PublishError(f"refusing to commit: {staged[0]}{more} is staged but was not written by "
                           "postrefresh; commit or unstage it (git restore --staged) first")


def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> bytes:
    """Run `git -C cwd --literal-pathspecs ARGS` (no shell, never prompting); PublishError on failure."""
    git = shutil.which("git")
    if git is None:
        raise PublishError("git is not installed: install it (apt-get install git), "
                           "or leave out --commit / publish_commit")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_LITERAL_PATHSPECS": "1"}
    result = subprocess.run([git, "-C", str(cwd), *args], input=stdin, capture_output=True,
                            env=env, timeout=GIT_TIMEOUT, check=False)
    if result.returncode != 0:
        lines = [line for line in result.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
        raise PublishError(f"git {args[0]} failed: {lines[-1] if lines else f'exit {result.returncode}'}")
    return result.stdout


def post_files(site: Path, history_dir: str, path: str, vid_id: str | None, status: str) -> dict[str, str]:
    """The files a refresh of one post may have written: the post, and its history CSV if any."""
    files = {path: status}
    if vid_id is not None:
        csv = history_file(history_dir, vid_id)
        if (site / csv).exists():
            files[csv] = CSV
    return files
