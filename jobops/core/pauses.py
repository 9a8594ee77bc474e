"""Why the fleet pauses its calls to LinkedIn, and what a call permit says."""

from __future__ import annotations

from typing import NamedTuple

#: Why the fleet's breaker opened; each has its own doubling steps.
THROTTLED = "throttled"  # a 429 without Retry-After, the day's count far from spent
RETRY_AFTER = "retry_after"  # a 429 with Retry-After: exactly as long as LinkedIn said
DAILY_LIMIT = "daily_limit"  # a 429 when the fleet's own count says the day is spent
TOKEN_REFUSED = "token_refused"  # 401 even with a fresh token, or credentials refused
REQUEST_REFUSED = "request_refused"  # a 400 that single-URN calls get as well

#: What an operator reads next to each reason (logs, ``jobops limits``).
PAUSE_HINTS = {
    THROTTLED: "LinkedIn throttles the application; calls resume by themselves",
    RETRY_AFTER: "LinkedIn asked for a pause with Retry-After",
    DAILY_LIMIT: "LinkedIn says the day's calls are spent; one call re-checks every "
                 "15 minutes and calls resume after 00:00 UTC",
    TOKEN_REFUSED: "LinkedIn refuses the application's tokens: check its access to the Job "
                   "Posting API and LINKEDIN_CLIENT_ID / LINKEDIN_CLIENT_SECRET",
    REQUEST_REFUSED: "LinkedIn refuses the status request itself (not one URN): check "
                     "LINKEDIN_API_URL, the application's API version and permissions",
}

#: A 429 means the day's limit only once the fleet's own count has used this share of
#: its allowance; before that it is a throttle of seconds.
DAY_NEARLY_SPENT_SHARE = 0.9
#: A daily-limit pause is re-checked with one call this often (never waits to midnight).
DAILY_RECHECK_SECONDS = 900.0
#: After 00:00 UTC the fleet resumes over this long, not all in the same second.
MIDNIGHT_SPREAD_SECONDS = 300.0


class Permit(NamedTuple):
    """A call permit: the day's calls so far, and whether this call probes a pause."""

    used_today: int
    probe: bool


class Trip(NamedTuple):
    """What ``Limiter.trip`` did: the pause left, and whether this trip started a step."""

    wait_seconds: float
    new_step: bool
    step: int
