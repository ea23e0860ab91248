"""The one retry policy of the Python side (spark_udfs.retry): full-jitter waits under a doubling cap, a
server's Retry-After honoured, retries only for errors the caller names retryable."""

from __future__ import annotations

import pytest

from spark_udfs.retry import Backoff, retry


class Flaky(Exception):
    pass


def test_waits_stay_under_a_doubling_cap() -> None:
    backoff = Backoff(base_seconds=1.0, max_seconds=8.0)
    assert [backoff.ceiling(attempt) for attempt in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    for attempt in range(6):
        assert all(0 <= backoff.delay(attempt) <= backoff.ceiling(attempt) for _ in range(200))


def test_a_retry_after_is_a_floor_capped_at_a_minute() -> None:
    backoff = Backoff(base_seconds=0.001, max_seconds=0.001)
    assert backoff.delay(0, retry_after=3.0) == 3.0
    assert backoff.delay(0, retry_after=3600.0) == 60.0


def test_retries_a_retryable_error_until_the_action_succeeds() -> None:
    calls: list[int] = []
    waits: list[float] = []
    retried: list[int] = []

    def action() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Flaky("not yet")
        return "done"

    result = retry(
        action,
        attempts=5,
        backoff=Backoff(0.5, 10.0),
        retryable=lambda error: isinstance(error, Flaky),
        on_retry=lambda _error, attempt: retried.append(attempt),
        sleep=waits.append,
    )
    assert result == "done"
    assert retried == [0, 1]
    assert len(waits) == 2 and 0 <= waits[0] <= 0.5 and 0 <= waits[1] <= 1.0


def test_gives_up_after_the_attempts_with_the_last_error() -> None:
    waits: list[float] = []

    def action() -> None:
        raise Flaky(f"attempt {len(waits) + 1}")

    with pytest.raises(Flaky, match="attempt 3"):
        retry(action, attempts=3, backoff=Backoff(), retryable=lambda _error: True, sleep=waits.append)
    assert len(waits) == 2


def test_an_error_that_is_not_retryable_goes_through_at_once() -> None:
    waits: list[float] = []

    def action() -> None:
        raise ValueError("a mistake")

    with pytest.raises(ValueError, match="a mistake"):
        retry(action, attempts=5, backoff=Backoff(), retryable=lambda e: isinstance(e, Flaky), sleep=waits.append)
    assert waits == []
