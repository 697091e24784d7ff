"""The one retry policy: what it retries, how long it waits, and what it re-raises."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.simulator_fixtures import FakeSleep
from worker.api.retry import retry_policy
from worker.errors import ApiKeyRejected, TransientApiError

pytestmark = pytest.mark.timeout(20)


def run(attempts: int, max_wait: float, fail: Callable[[int], Exception | None],
        sleep: FakeSleep) -> tuple[int, str]:
    """Call a function that fails as `fail(call_number)` says; return (calls, result)."""
    calls = 0

    async def once() -> str:
        nonlocal calls
        calls += 1
        error = fail(calls)
        if error is not None:
            raise error
        return "ok"

    policy = retry_policy(attempts=attempts, max_wait=max_wait, sleep=sleep)
    result: str = asyncio.run(policy(once))
    return calls, result


def test_transient_errors_are_retried_until_success() -> None:
    sleep = FakeSleep()
    calls, result = run(5, 10.0, lambda n: TransientApiError("503") if n < 3 else None, sleep)
    assert (calls, result) == (3, "ok")
    assert len(sleep.waits) == 2


def test_other_errors_are_not_retried() -> None:
    sleep = FakeSleep()
    with pytest.raises(ApiKeyRejected):
        run(5, 10.0, lambda n: ApiKeyRejected("bad key"), sleep)
    assert sleep.waits == []


def test_the_last_transient_error_is_reraised_when_attempts_run_out() -> None:
    sleep = FakeSleep()
    with pytest.raises(TransientApiError, match="try 4"):
        run(4, 10.0, lambda n: TransientApiError(f"try {n}"), sleep)
    assert len(sleep.waits) == 3


def test_retry_after_is_waited_exactly_and_capped_at_max_wait() -> None:
    sleep = FakeSleep()
    with pytest.raises(TransientApiError):
        run(3, 10.0, lambda n: TransientApiError("429", retry_after=2.5 if n == 1 else 99), sleep)
    assert sleep.waits == [2.5, 10.0]


@settings(max_examples=50, deadline=None)
@given(attempts=st.integers(2, 8), max_wait=st.floats(0.01, 100))
def test_backoff_waits_stay_between_zero_and_max_wait(attempts: int, max_wait: float) -> None:
    sleep = FakeSleep()
    with pytest.raises(TransientApiError):
        run(attempts, max_wait, lambda n: TransientApiError("boom"), sleep)
    assert len(sleep.waits) == attempts - 1
    assert all(0 <= w <= max_wait for w in sleep.waits)


def test_zero_attempts_is_refused() -> None:
    with pytest.raises(ValueError):
        retry_policy(attempts=0, max_wait=1.0)
