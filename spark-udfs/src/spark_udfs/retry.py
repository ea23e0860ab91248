"""The one retry policy of the Python side: exponential backoff with full jitter (a random wait between 0
and base * 2^attempt, capped), so that many executors retrying at once spread out instead of hammering
together. The HTTP client and the erasure job's commit-conflict retries use it."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    base_seconds: float = 0.2
    max_seconds: float = 20.0

    def __post_init__(self) -> None:
        if self.base_seconds < 0 or self.max_seconds < 0:
            raise ValueError("backoff seconds must be 0 or more")

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failed attempt number `attempt` (0 for the first)."""
        return float(min(self.max_seconds, self.base_seconds * 2**attempt))

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait after failed attempt `attempt`; at least a server's Retry-After (capped at 60 s) when given."""
        wait = random.uniform(0, self.ceiling(attempt))
        return max(wait, min(retry_after, 60.0)) if retry_after is not None else wait


def retry(
    action: Callable[[], T],
    *,
    attempts: int,
    backoff: Backoff,
    retryable: Callable[[Exception], bool],
    on_retry: Callable[[Exception, int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Runs `action` up to `attempts` times while it raises a retryable error, waiting between attempts; the last
    error (or the first one that is not retryable) is raised as it is."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(attempts):
        try:
            return action()
        except Exception as error:
            if attempt == attempts - 1 or not retryable(error):
                raise
            if on_retry is not None:
                on_retry(error, attempt)
            sleep(backoff.delay(attempt))
    raise AssertionError("unreachable: the last attempt returns or raises")
