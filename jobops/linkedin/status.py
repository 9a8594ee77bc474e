"""One GET of /v2/simpleJobPostingTasks, with its answer classified."""

from __future__ import annotations

import uuid
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import requests

from jobops.core.errors import (
    AuthenticationError,
    BadBatchKey,
    LinkedInError,
    QueryTooLong,
    RequestRefused,
    TokenError,
    TransientError,
)
from jobops.core.pauses import (
    DAILY_LIMIT,
    REQUEST_REFUSED,
    RETRY_AFTER,
    THROTTLED,
    TOKEN_REFUSED,
    Permit,
    Trip,
)
from jobops.core.polling import StatusPage
from jobops.core.urns import query_string
from jobops.linkedin.oauth import TokenSource

STATUS_PATH = "/v2/simpleJobPostingTasks"


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
    def acquire(self, holder: str = "") -> Permit: ...

    def trip(self, reason: str, message: str, seconds: float | None = None) -> Trip: ...

    def heal(self, holder: str) -> None: ...

    def release_probe(self, holder: str) -> None: ...

    def day_nearly_spent(self, used_today: int) -> bool: ...


class CallCounter(Protocol):
    def call(self, status: int | str, urns: int) -> None: ...


class _Uncounted:
    def call(self, status: int | str, urns: int) -> None:
        pass


# The seed's message for a refused ids value: the only 400 that blames one URN.
_BATCH_KEY_TEXT = "batch key"


class StatusClient:
    """Asks LinkedIn for the status of task URNs, one permit per HTTP call.

    It never retries on a timer: it gets a fresh token once after a 401 and otherwise
    raises one of the errors in :mod:`jobops.core.errors`, leaving the when-to-retry
    decision to the task. What LinkedIn refuses for the whole application — a 429, a fresh
    token refused, credentials refused — pauses the fleet through the limiter's breaker
    (see :mod:`jobops.state.limits`), so a lasting refusal costs one call per pause step,
    not one per verification.
    """

    def __init__(
        self,
        session: requests.Session,
        api_url: str,
        tokens: TokenSource,
        permits: CallPermits,
        timeout_seconds: float,
        metrics: CallCounter | None = None,
    ) -> None:
        self._session = session
        self._url = api_url.rstrip("/") + STATUS_PATH
        self._tokens = tokens
        self._permits = permits
        self._timeout_seconds = timeout_seconds
        self._metrics = metrics or _Uncounted()
        # Names this client to the breaker: when one of its calls probes a pause, the rest
        # of its run (a fresh token, the canary, halving) may call too.
        self._holder = uuid.uuid4().hex
        self.calls = 0

    def fetch(self, urns: list[str], now: float) -> StatusPage:
        permits = [self._permits.acquire(self._holder)]
        try:
            page = self._fetch(f"{self._url}?{query_string(urns)}", len(urns), now, permits)
        except BaseException:
            if any(permit.probe for permit in permits):
                self._permits.release_probe(self._holder)
            raise
        if any(permit.probe for permit in permits):
            self._permits.heal(self._holder)
        return page

    def _fetch(self, url: str, urns: int, now: float, permits: list[Permit]) -> StatusPage:
        """The call, and its retry with a fresh token after a 401; ``permits`` gets the
        retry's permit too (it may be a pause's probe)."""
        token = self._token()
        response = self._get(url, token, urns)
        if response.status_code == 401:
            self._tokens.invalidate(token)
            permits.append(self._permits.acquire(self._holder))
            response = self._get(url, self._token(), urns)
            if response.status_code == 401:
                self._refused_fresh_token(response)
        return self._classify(response, now, permits[-1])

    def request_refused(self, error: LinkedInError) -> float:
        """Pause the fleet: LinkedIn refuses the request's form, not one URN."""
        return self._permits.trip(REQUEST_REFUSED, str(error)).wait_seconds

    def _token(self) -> str:
        try:
            return self._tokens.token()
        except TokenError as error:
            if error.http_status in (400, 401):
                # The credentials themselves are refused: asking again each round helps
                # nobody and floods the token endpoint.
                error.retry_after_seconds = self._permits.trip(TOKEN_REFUSED,
                                                               str(error)).wait_seconds
            raise

    def _refused_fresh_token(self, response: requests.Response) -> None:
        body = _body(response)
        message = str(body.get("message") or "bearer token refused")
        trip = self._permits.trip(TOKEN_REFUSED, f"a fresh token was refused too: {message}")
        raise AuthenticationError(
            message,
            http_status=401,
            service_error_code=body.get("serviceErrorCode"),
            resolution="a fresh token was refused too: check the application's access to "
            "the Job Posting API",
            retry_after_seconds=trip.wait_seconds,
        )

    def _get(self, url: str, token: str, urns: int) -> requests.Response:
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

    def _classify(self, response: requests.Response, now: float, permit: Permit
                  ) -> StatusPage:
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
            if _BATCH_KEY_TEXT in message.lower():
                raise BadBatchKey(message, http_status=400, service_error_code=service_code)
            raise RequestRefused(message, http_status=400, service_error_code=service_code,
                                 resolution="LinkedIn refused the request; if every call gets "
                                 "this, check LINKEDIN_API_URL and the application's access")
        if code == 414:
            raise QueryTooLong(message, http_status=414)
        if code == 429:
            raise self._throttled(message, service_code, response, now, permit)
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

    def _throttled(self, message: str, service_code: Any, response: requests.Response,
                   now: float, permit: Permit) -> TransientError:
        """Pause the fleet as a 429 asks. LinkedIn's message is the same for its daily
        limit and any short throttle, so only the fleet's own count says which it is."""
        wait = retry_after_seconds(response.headers.get("Retry-After"), now)
        if wait is not None:
            trip = self._permits.trip(RETRY_AFTER, message, wait)
        elif self._permits.day_nearly_spent(permit.used_today):
            trip = self._permits.trip(DAILY_LIMIT, message)
        else:
            trip = self._permits.trip(THROTTLED, message)
        return TransientError(message, http_status=429, service_error_code=service_code,
                              retry_after_seconds=trip.wait_seconds)
