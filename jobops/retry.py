"""When to look again: two small pure functions, jitter injectable for tests."""

from __future__ import annotations

import random
from collections.abc import Callable

from jobops.errors import LinkedInError, TransientError

Jitter = Callable[[], float]


def backoff_seconds(round_number: int, base_seconds: float, cap_seconds: float,
                    jitter: Jitter = random.random) -> float:
    """Capped exponential backoff with equal jitter: between half and all of the step."""
    step = min(cap_seconds, base_seconds * 2 ** min(round_number, 62))
    return step / 2 + step / 2 * jitter()


def wait_after_error(error: LinkedInError, round_number: int, base_seconds: float,
                     cap_seconds: float, jitter: Jitter = random.random) -> float:
    """How long to wait after a failed call; the server's Retry-After wins when given."""
    if isinstance(error, TransientError) and error.retry_after_seconds is not None:
        return min(max(error.retry_after_seconds, 0.0), cap_seconds)
    return backoff_seconds(round_number, base_seconds, cap_seconds, jitter)


def next_check_seconds(wait_seconds: float, now: float, deadline: float) -> float | None:
    """The countdown to the next check, or None when the deadline leaves no time for one."""
    remaining = deadline - now
    if remaining <= 0:
        return None
    return min(wait_seconds, remaining)
