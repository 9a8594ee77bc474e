"""The baselines' own LinkedIn token: one per worker process, as a team without jobops
would keep it (no sharing, no lock), renewed a minute before it expires."""

from __future__ import annotations

import os
import time
from typing import Any

import requests

session = requests.Session()
_token: dict[str, Any] = {}


def access_token(renew: bool = False) -> str:
    if renew or not _token or _token["expires_at"] < time.time() + 60:
        answer = session.post(os.environ["LINKEDIN_TOKEN_URL"], data={
            "grant_type": "client_credentials",
            "client_id": os.environ["LINKEDIN_CLIENT_ID"],
            "client_secret": os.environ["LINKEDIN_CLIENT_SECRET"],
        }, timeout=30)
        answer.raise_for_status()
        body = answer.json()
        _token.update(value=body["access_token"],
                      expires_at=time.time() + float(body["expires_in"]))
    return str(_token["value"])
