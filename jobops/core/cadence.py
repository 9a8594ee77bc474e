"""Every "when to look again": the first check, backoff, waits after errors, the deadline.

Pure functions and one frozen ``Cadence`` built from the settings; jitter is injectable
for tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from jobops.core.errors import LinkedInError

Jitter = Callable[[], float]


def backoff_seconds(round_number: int, base_seconds: float, cap_seconds: float,
                    jitter: Jitter = random.random) -> float:
    """Capped exponential backoff with equal jitter: between half and all of the step."""
    step = min(cap_seconds, base_seconds * 2 ** min(round_number, 62))
    return step / 2 + step / 2 * jitter()


#: A wait the fleet shares (Retry-After, a pause, midnight UTC, a full second of permits)
#: is stretched by up to this share of itself, at least ``MIN_SPREAD_SECONDS``, so the
#: verifications that got it do not all wake in the same instant.
SPREAD_SHARE = 0.2
MIN_SPREAD_SECONDS = 1.0


def spread_seconds(shared_wait_seconds: float, cap_seconds: float,
                   jitter: Jitter = random.random) -> float:
    """A shared wait plus this verification's own share of a spread, within the cap.

    At the cap the spread comes off instead: waking a little early costs one look at the
    pause, waking past the cap would break the countdown's bound.
    """
    wait = max(shared_wait_seconds, 0.0)
    spread = max(MIN_SPREAD_SECONDS, wait * SPREAD_SHARE)
    if wait + spread <= cap_seconds:
        return wait + spread * jitter()
    spread = min(spread, cap_seconds)
    return cap_seconds - spread * jitter()


def wait_after_error(error: LinkedInError, round_number: int, base_seconds: float,
                     cap_seconds: float, jitter: Jitter = random.random) -> float:
    """How long to wait after a failed call; a wait the fleet shares wins when known."""
    if error.retry_after_seconds is not None:
        return spread_seconds(error.retry_after_seconds, cap_seconds, jitter)
    return backoff_seconds(round_number, base_seconds, cap_seconds, jitter)


def next_check_seconds(wait_seconds: float, now: float, deadline: float) -> float | None:
    """The countdown to the next check, or None once the deadline has passed: a check
    planned for the deadline itself is the last one."""
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


#: A run that failed unexpectedly (not LinkedIn: a bug, Redis) retries on this backoff.
UNEXPECTED_ERROR_BASE_SECONDS = 5.0
UNEXPECTED_ERROR_CAP_SECONDS = 300.0


@dataclass(frozen=True)
class Cadence:
    """The polling schedule of one fleet."""

    first_check_seconds: float
    poll_interval_seconds: float
    max_poll_interval_seconds: float
    lifespan_seconds: float
    status_fresh_seconds: float
    visibility_timeout_seconds: float

    @property
    def lifespan_days(self) -> float:
        return self.lifespan_seconds / 86_400

    @property
    def max_countdown_seconds(self) -> float:
        return max_countdown_seconds(self.visibility_timeout_seconds)

    @property
    def shared_answer_fresh_seconds(self) -> float:
        """How long another run's answer stands in for a call: an IN_PROGRESS older than
        one poll interval tells a verification nothing its own next check would not."""
        return min(self.status_fresh_seconds, self.poll_interval_seconds)

    def countdown(self, seconds: float) -> float:
        """``seconds`` as a countdown jobops may publish."""
        return capped_countdown(seconds, self.max_countdown_seconds)

    def deadline(self, requested_at: float) -> float:
        """When LinkedIn forgets the operation's task ids."""
        return requested_at + self.lifespan_seconds

    def wait_after_round(self, error: LinkedInError | None, poll_round: int,
                         jitter: Jitter = random.random) -> float:
        """Until the next check of URNs still pending after round ``poll_round``."""
        base, cap = self.poll_interval_seconds, self.max_poll_interval_seconds
        if error is not None:
            return wait_after_error(error, poll_round, base, cap, jitter)
        return backoff_seconds(poll_round, base, cap, jitter)

    def wait_after_unexpected_error(self, retries: int, jitter: Jitter = random.random
                                    ) -> float:
        return backoff_seconds(retries, UNEXPECTED_ERROR_BASE_SECONDS,
                               UNEXPECTED_ERROR_CAP_SECONDS, jitter)

    def last_check_by(self, deadline: float, failing: bool) -> float:
        """Until when another check may be planned: the deadline, where that check is the
        last one; a little past it while the check at the deadline keeps failing."""
        return deadline + self.max_poll_interval_seconds if failing else deadline

    def next_check(self, wait_seconds: float, now: float, deadline: float, failing: bool
                   ) -> float | None:
        return next_check_seconds(wait_seconds, now, self.last_check_by(deadline, failing))
