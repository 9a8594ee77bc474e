"""The exceptions jobops raises, under one root.

    JobopsError
    ├── ConfigurationError      settings missing or malformed
    ├── InvalidRequest          a verification request that cannot be scheduled
    └── LinkedInError           LinkedIn (or the sandbox) did not give a usable answer
        ├── TokenError          the token endpoint refused or failed
        ├── AuthenticationError a bearer token was refused even after a fresh one
        ├── BadBatchKey         400 "Batch key parameter value is invalid"
        ├── RequestRefused      any other 400: the request itself, not one URN
        ├── QueryTooLong        414: the query string was longer than LinkedIn accepts
        └── TransientError      5xx, 429, timeouts, resets, unreadable bodies: try later
            ├── RateLimited     no call permit free this second (JOBOPS_CALLS_PER_SECOND)
            ├── QuotaExhausted  the UTC day's calls are spent (JOBOPS_DAILY_CALL_LIMIT)
            └── Paused          LinkedIn asked the fleet to pause (429)
"""

from __future__ import annotations


class JobopsError(Exception):
    """Raised for anything jobops itself reports; no message ever contains a client secret
    or an access token."""


class ConfigurationError(JobopsError):
    """Raised when a setting is missing or malformed; the message names the variable."""


class InvalidRequest(JobopsError, ValueError):
    """Raised when a verification request is malformed; the message says what to fix."""


class LinkedInError(JobopsError):
    """Raised when LinkedIn's answer cannot be used as it is."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        service_error_code: int | None = None,
        resolution: str | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        self.http_status = http_status
        # How long the fleet waits before calling again, when it is known (Retry-After,
        # a fleet-wide pause, midnight UTC).
        self.retry_after_seconds = retry_after_seconds
        self.service_error_code = service_error_code
        self.resolution = resolution
        parts = [message]
        if http_status is not None:
            parts.append(f"HTTP {http_status}")
        if service_error_code is not None:
            parts.append(f"serviceErrorCode {service_error_code}")
        text = " (" + ", ".join(parts[1:]) + ")" if len(parts) > 1 else ""
        hint = f" — {resolution}" if resolution else ""
        super().__init__(f"{message}{text}{hint}")


class TokenError(LinkedInError):
    """Raised when no access token could be obtained from LINKEDIN_TOKEN_URL."""


class AuthenticationError(LinkedInError):
    """Raised when LinkedIn refuses a freshly obtained bearer token."""


class BadBatchKey(LinkedInError):
    """Raised when LinkedIn answers 400 because an ids value is not a valid task URN."""


class RequestRefused(LinkedInError):
    """Raised when LinkedIn answers 400 with a message that does not blame one task URN."""


class QueryTooLong(LinkedInError):
    """Raised when LinkedIn answers 414 to a query string it finds too long."""


class TransientError(LinkedInError):
    """Raised for failures worth retrying later: 5xx, 429, timeouts, broken bodies."""


class RateLimited(TransientError):
    """Raised when no call permit is free within the time a worker may block for one."""


class QuotaExhausted(TransientError):
    """Raised when the UTC day's call allowance is spent; the wait runs to midnight UTC."""


class Paused(TransientError):
    """Raised while the fleet pauses its calls because LinkedIn answered 429."""
