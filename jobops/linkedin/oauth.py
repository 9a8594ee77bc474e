"""LinkedIn's OAuth 2 client-credentials grant: one token request, its errors named.

``TokenSource`` is all the status client sees of tokens: ``token()`` for a bearer token,
``invalidate(token)`` when LinkedIn refused it.
"""

from __future__ import annotations

from typing import Protocol

import requests

from jobops.core.errors import TokenError

# LinkedIn documents 1800 s; used only when the answer leaves expires_in out.
DEFAULT_EXPIRES_IN_SECONDS = 1800.0


class TokenSource(Protocol):
    def token(self) -> str: ...

    def invalidate(self, token: str) -> None: ...


def request_token(
    session: requests.Session,
    token_url: str,
    client_id: str,
    client_secret: str,
    timeout_seconds: float,
) -> tuple[str, float]:
    """Ask the token endpoint for a token; returns it and its lifetime in seconds."""
    if not client_id or not client_secret:
        raise TokenError(
            "no LinkedIn credentials",
            resolution="set LINKEDIN_CLIENT_ID and LINKEDIN_CLIENT_SECRET",
        )
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
    }
    try:
        response = session.post(token_url, data=form, timeout=timeout_seconds)
    except requests.RequestException as error:
        raise TokenError(
            f"token endpoint unreachable: {type(error).__name__}",
            resolution="check LINKEDIN_TOKEN_URL and the network",
        ) from None
    if response.status_code in (400, 401):
        raise TokenError(
            f"token endpoint refused the credentials: {_oauth_error(response)}",
            http_status=response.status_code,
            resolution="check LINKEDIN_CLIENT_ID and LINKEDIN_CLIENT_SECRET",
        )
    if response.status_code != 200:
        raise TokenError(
            "token endpoint failed",
            http_status=response.status_code,
            resolution="LinkedIn's token endpoint is failing; jobops retries later "
            "(check LINKEDIN_TOKEN_URL if this persists)",
        )
    try:
        body = response.json()
        access_token = body["access_token"]
        expires_in = float(body.get("expires_in", DEFAULT_EXPIRES_IN_SECONDS))
    except (ValueError, KeyError, TypeError):
        raise TokenError(
            "token endpoint answered without a usable access_token",
            http_status=response.status_code,
            resolution="check that LINKEDIN_TOKEN_URL is LinkedIn's OAuth accessToken endpoint",
        ) from None
    if not isinstance(access_token, str) or not access_token:
        raise TokenError("token endpoint answered with an empty access_token")
    return access_token, expires_in


def _oauth_error(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return "no reason given"
    if not isinstance(body, dict):
        return "no reason given"
    return str(body.get("error_description") or body.get("error") or "no reason given")
