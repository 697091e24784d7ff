"""The progress bar of `postrefresh run` on a terminal: posts taken of the total, with an ETA.

The total comes from a second, cheap walk of the posts folders (names only, no post read)
in a background thread, so the bar shows it within moments instead of at the very end of a
streaming discovery. While the bar is up, log lines are written above it, never across it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm


class Progress:
    """A bar that advances as the run takes each post; use it as a context manager."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._total: int | None = None
        self._bar: Any = None
        self._exit = contextlib.ExitStack()

    def __enter__(self) -> Progress:
        self._bar = self._exit.enter_context(tqdm(unit=" posts", file=self._stream, leave=False))
        self._exit.enter_context(logging_redirect_tqdm())
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    def track(self, paths: Iterable[str], count: Callable[[], int]) -> Iterator[str]:
        """Yield `paths`, one step of the bar each; `count()` gives the total, in a thread."""
        threading.Thread(target=self._count, args=(count,), name="count-posts", daemon=True).start()
        for path in paths:
            if self._total is not None and self._bar.total is None:
                self._bar.total = self._total  # set here, in the bar's own thread
            yield path
            self._bar.update(1)

    def _count(self, count: Callable[[], int]) -> None:
        with contextlib.suppress(OSError):  # an unreadable folder is the run's to report, not the bar's
            self._total = count()
