"""One GET of /v2/simpleJobPostingTasks, with its answer classified.

The client never retries on a timer: it gets a fresh token once after a 401 and otherwise
raises one of the errors in :mod:`jobops.errors`, leaving the when-to-retry decision to
the task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import requests

from jobops.errors import (
    AuthenticationError,
    BadBatchKey,
    LinkedInError,
    QueryTooLong,
    TransientError,
)
from jobops.metrics import Metrics
from jobops.tokens import TokenSource
from jobops.urns import query_string

STATUS_PATH = "/v2/simpleJobPostingTasks"


@dataclass
class StatusPage:
    """LinkedIn's answer to one status call: entries by URN, and per-URN errors."""

    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, Any] = field(default_factory=dict)


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def _body(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class CallPermits(Protocol):
    def acquire(self) -> int: ...

    def pause(self, seconds: float | None) -> float: ...


# LinkedIn's answer when the application's daily allowance is spent (serviceErrorCode 101).
_DAILY_LIMIT_TEXT = "throttle limit for calls to this resource"


class StatusClient:
    """Asks LinkedIn for the status of task URNs, one permit per HTTP call."""

    def __init__(
        self,
        session: requests.Session,
        api_url: str,
        tokens: TokenSource,
        permits: CallPermits,
        timeout_seconds: float,
        metrics: Metrics | None = None,
    ) -> None:
        self._session = session
        self._url = api_url.rstrip("/") + STATUS_PATH
        self._tokens = tokens
        self._permits = permits
        self._timeout_seconds = timeout_seconds
        self._metrics = metrics or Metrics()
        self.calls = 0

    def fetch(self, urns: list[str], now: float) -> StatusPage:
        query = query_string(urns)
        for attempt in (1, 2):
            token = self._tokens.token()
            response = self._get(f"{self._url}?{query}", token, len(urns))
            if response.status_code != 401:
                break
            self._tokens.invalidate(token)
            if attempt == 2:
                body = _body(response)
                raise AuthenticationError(
                    str(body.get("message") or "bearer token refused"),
                    http_status=401,
                    service_error_code=body.get("serviceErrorCode"),
                    resolution="a fresh token was refused too: check the application's "
                    "access to the Job Posting API",
                )
        return self._classify(response, now)

    def _get(self, url: str, token: str, urns: int) -> requests.Response:
        self._permits.acquire()
        self.calls += 1
        try:
            response = self._session.get(
                url,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                timeout=self._timeout_seconds,
            )
            self._metrics.call(response.status_code, urns)
            return response
        except requests.RequestException as error:
            self._metrics.call("error", urns)
            # The exception's text can hold the URL but never the header; keep only its kind.
            raise TransientError(f"status call failed: {type(error).__name__}") from None

    def _classify(self, response: requests.Response, now: float) -> StatusPage:
        code = response.status_code
        if code == 200:
            body = _body(response)
            results = body.get("results")
            if not isinstance(results, dict):
                raise TransientError("status call answered 200 without a results object",
                                     http_status=200)
            errors = body.get("errors")
            return StatusPage(results=results, errors=errors if isinstance(errors, dict) else {})
        body = _body(response)
        message = str(body.get("message") or response.reason or "no message")
        service_code = body.get("serviceErrorCode")
        if code == 400:
            raise BadBatchKey(message, http_status=400, service_error_code=service_code)
        if code == 414:
            raise QueryTooLong(message, http_status=414)
        if code == 429:
            wait = retry_after_seconds(response.headers.get("Retry-After"), now)
            if wait is None and _DAILY_LIMIT_TEXT in message.lower():
                wait = self._permits.pause(None)
            elif wait is not None:
                self._permits.pause(wait)
            raise TransientError(message, http_status=429, service_error_code=service_code,
                                 retry_after_seconds=wait)
        if code >= 500:
            raise TransientError(message, http_status=code, service_error_code=service_code)
        if code == 403:
            raise TransientError(
                message,
                http_status=403,
                service_error_code=service_code,
                resolution="the application may lack access to simpleJobPostingTasks",
            )
        raise LinkedInError(message, http_status=code, service_error_code=service_code)
