"""The one tenacity policy for seconds-scale retries of transient API and thumbnail failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import tenacity

from worker.errors import TransientApiError

Sleep = Callable[[float], Awaitable[None]]

# The first backoff is drawn from [0, BASE_WAIT] seconds, then the range doubles per attempt.
BASE_WAIT = 0.5


def retry_policy(*, attempts: int, max_wait: float, sleep: Sleep | None = None
                 ) -> tenacity.AsyncRetrying:
    """Retry TransientApiError up to `attempts` tries with full-jitter backoff or Retry-After.

    A server's Retry-After is obeyed exactly (capped at `max_wait`); otherwise the wait is
    random in [0, min(max_wait, BASE_WAIT * 2**n)]. The last TransientApiError is re-raised.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    return tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=_retry_after_or(tenacity.wait_random_exponential(multiplier=BASE_WAIT, max=max_wait),
                             max_wait),
        retry=tenacity.retry_if_exception_type(TransientApiError),
        reraise=True,
        sleep=sleep or asyncio.sleep,
    )


def _retry_after_or(backoff: tenacity.wait.wait_base, max_wait: float
                    ) -> Callable[[tenacity.RetryCallState], float]:
    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, TransientApiError) and exc.retry_after is not None:
            return max(0.0, min(exc.retry_after, max_wait))
        return float(backoff(state))

    return wait
