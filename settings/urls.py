"""URLs in the settings: how they are shown, and where a plain ``http://`` one may point."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

__all__ = ["masked", "plain_http_elsewhere"]

_PASSWORD_QUERY = re.compile(r"(?i)([?&]password=)[^&#;]*")
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def _masked_one(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    # Everything up to the last "@" before the query is userinfo, even a password holding
    # an unescaped "/" or "@": better to hide too much than a piece of a password.
    head, query_sep, query = rest.partition("?")
    userinfo, at, host = head.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        head = f"{user}:***@{host}" if colon else f"***@{host}"
    return f"{scheme}://{head}{query_sep}{query}"


def masked(url: str) -> str:
    """``url`` with every password (userinfo or ``password=``) replaced by ``***``.

    Handles Celery's ``;``-separated failover lists.
    """
    shown = ";".join(_masked_one(part) for part in url.split(";"))
    return _PASSWORD_QUERY.sub(r"\1***", shown)


def _loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_elsewhere(url: str) -> bool:
    """Whether ``url`` would carry credentials unencrypted off this machine."""
    parts = urlsplit(url)
    return parts.scheme == "http" and not _loopback(parts.hostname or "")
