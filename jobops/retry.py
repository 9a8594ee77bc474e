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


#: Share of the broker's visibility timeout one countdown may take: Redis delivers a
#: message again once it has been unacknowledged that long, so a longer countdown runs
#: its task twice.
COUNTDOWN_SHARE_OF_VISIBILITY = 0.5


def max_countdown_seconds(visibility_timeout_seconds: float) -> float:
    """The longest countdown jobops publishes or accepts."""
    return visibility_timeout_seconds * COUNTDOWN_SHARE_OF_VISIBILITY


def capped_countdown(seconds: float, max_seconds: float) -> float:
    """A wait as a countdown: never negative, never past ``max_seconds`` (a longer wait is
    taken in steps: the task runs early, finds nothing to do yet and waits again)."""
    return min(max(seconds, 0.0), max_seconds)
