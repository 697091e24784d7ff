"""Every error postrefresh raises, as one small tree.

    PostrefreshError
    ├── ConfigError          usage or configuration is wrong: fix it and rerun (exit 2)
    ├── RunLocked            another run holds the site's lock: wait for it (exit 75)
    ├── BrokerUnreachable    Redis does not answer: start it or fix REDIS_URL (exit 75)
    ├── StateUnavailable     the site's state database cannot be written (disk full?) (exit 75)
    ├── FatalApiError        stop calling the API for the rest of the run
    │   ├── ApiKeyRejected   the key is missing, invalid or forbidden (exit 2)
    │   ├── QuotaExhausted   the daily quota or the run's unit budget is used up (exit 75)
    │   └── ApiUnreachable   the API kept failing after every retry (exit 75)
    ├── TransientApiError    one call failed in a way worth retrying (never leaves the client)
    ├── PostFormatError      a post's bytes cannot be read or edited safely (no path: pure code)
    │   └── UnsafeEdit       the edit would not be minimal or exact
    ├── BadPost              one post cannot be refreshed: reported by path, left as is (exit 1)
    └── ThumbnailError       one thumbnail was not stored; the previous one is kept

Messages never contain the API key; they name the post or the video and say what to do.
"""

from __future__ import annotations


class PostrefreshError(Exception):
    """Base of every error raised on purpose by postrefresh."""


class ConfigError(PostrefreshError):
    """The command line, the environment or a config file is wrong."""


class RunLocked(PostrefreshError):
    """Another postrefresh run holds the site's run lock."""


class BrokerUnreachable(PostrefreshError):
    """Redis (the broker and the shared keys) did not answer."""


class StateUnavailable(PostrefreshError):
    """The site's state database (.postrefresh/state.db) cannot be read or written."""


class FatalApiError(PostrefreshError):
    """The API cannot be used any more in this run."""


class ApiKeyRejected(FatalApiError):
    """The API refused the key (missing, invalid, or not allowed for this API)."""


class QuotaExhausted(FatalApiError):
    """The daily quota, or the run's --max-units budget, is used up."""


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


class BadPost(PostrefreshError):
    """A post that cannot be refreshed; it is reported by path and left byte-identical."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class ThumbnailError(PostrefreshError):
    """A thumbnail could not be fetched or failed its checks; the old file is kept."""
