"""Every error postrefresh raises, as one small tree, each with the exit code it ends a command with.

    PostrefreshError         (exit 1 unless below says otherwise)
    ├── ConfigError          usage or configuration is wrong: fix it and rerun (exit 2)
    ├── PublishError         the commit cannot be made safely: not a git repo, git missing, no
    │   │                    identity, unrelated staged changes (exit 2)
    │   └── CommitFailed     `git commit` refused (a hook?); what was staged for it is unstaged (exit 75)
    ├── PushFailed           the commit is made, the push failed (the next push sends it) (exit 75)
    ├── RunLocked            another run holds the site's lock: wait for it (exit 75)
    ├── BrokerUnreachable    Redis does not answer: start it or fix REDIS_URL (exit 75)
    ├── StateUnavailable     the site's state database cannot be written (disk full?) (exit 75)
    ├── FatalApiError        stop calling the API for the rest of the run (exit 75)
    │   ├── ApiKeyRejected   the key is missing, invalid or forbidden (exit 2)
    │   ├── QuotaExhausted   the daily quota or the run's unit budget is used up (exit 75)
    │   │   └── QuotaPaused  the shared quota is used up: fetching resumes at `resume_at` (exit 75)
    │   └── ApiUnreachable   the API kept failing after every retry (exit 75)
    ├── TransientApiError    one call failed in a way worth retrying (never leaves the client)
    ├── PostFormatError      a post's bytes cannot be read or edited safely (no path: pure code)
    │   └── UnsafeEdit       the edit would not be minimal or exact
    └── ThumbnailError       one thumbnail was not stored; the previous one is kept

Messages never contain the API key; they name the post or the video and say what to do.
"""

from __future__ import annotations

# What a command exits with; each error below carries the one it ends a command with.
EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_STOPPED_EARLY = 75
EXIT_INTERRUPTED = 130


class PostrefreshError(Exception):
    """Base of every error raised on purpose by postrefresh."""

    exit_code = EXIT_SOME_FAILED


class ConfigError(PostrefreshError):
    """The command line, the environment or a config file is wrong."""

    exit_code = EXIT_USAGE


class PublishError(PostrefreshError):
    """The commit cannot be made safely; the message says what to do."""

    exit_code = EXIT_USAGE


class CommitFailed(PublishError):
    """`git commit` failed after the files were staged; they are unstaged again."""

    exit_code = EXIT_STOPPED_EARLY


class PushFailed(PostrefreshError):
    """The commit was made but `git push` failed."""

    exit_code = EXIT_STOPPED_EARLY


class RunLocked(PostrefreshError):
    """Another postrefresh run holds the site's run lock."""

    exit_code = EXIT_STOPPED_EARLY


class BrokerUnreachable(PostrefreshError):
    """Redis (the broker and the shared keys) did not answer."""

    exit_code = EXIT_STOPPED_EARLY


class StateUnavailable(PostrefreshError):
    """The site's state database (.postrefresh/state.db) cannot be read or written."""

    exit_code = EXIT_STOPPED_EARLY


class FatalApiError(PostrefreshError):
    """The API cannot be used any more in this run."""

    exit_code = EXIT_STOPPED_EARLY


class ApiKeyRejected(FatalApiError):
    """The API refused the key (missing, invalid, or not allowed for this API)."""

    exit_code = EXIT_USAGE


class QuotaExhausted(FatalApiError):
    """The daily quota, or the run's --max-units budget, is used up."""


class QuotaPaused(QuotaExhausted):
    """Fetching is paused until `resume_at` (epoch seconds), when the quota day turns.

    `began` is True for the one error, among all workers, that started the pause.
    """

    def __init__(self, message: str, resume_at: float, *, began: bool = False) -> None:
        super().__init__(message)
        self.resume_at = resume_at
        self.began = began


class ApiUnreachable(FatalApiError):
    """The API kept failing after the whole retry budget."""


class TransientApiError(PostrefreshError):
    """One API call failed in a way that a retry may fix.

    `retry_after` is the server's Retry-After in seconds, when it sent one.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PostFormatError(PostrefreshError):
    """A post's bytes cannot be parsed or edited safely; the message is the reason."""


class UnsafeEdit(PostFormatError):
    """The requested edit cannot be made as a minimal, exact in-place change."""


class ThumbnailError(PostrefreshError):
    """A thumbnail could not be fetched or failed its checks; the old file is kept."""
