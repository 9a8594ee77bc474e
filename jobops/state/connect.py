"""Connecting to the fleet's Redis: a plain URL, or Redis Sentinel's addresses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.sentinel import Sentinel

SENTINEL_SCHEME = "sentinel://"
#: URLs (state or broker) that name a Redis.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", SENTINEL_SCHEME)


def is_redis(url: str) -> bool:
    return url.startswith(REDIS_SCHEMES)


def is_sentinel(url: str) -> bool:
    return url.startswith(SENTINEL_SCHEME)


@dataclass(frozen=True)
class SentinelAddress:
    """Celery's form, ``sentinel://[:password@]host:port[/db];sentinel://host:port;…``:
    the sentinels to ask, and the database and password of the primary they name."""

    sentinels: tuple[tuple[str, int], ...]
    db: int
    password: str | None
    username: str | None


def sentinel_address(url: str) -> SentinelAddress:
    sentinels, db, password, username = [], 0, None, None
    for part in url.split(";"):
        parts = urlsplit(part.strip())
        if parts.scheme != "sentinel" or not parts.hostname:
            raise ValueError(f"{part!r} is not sentinel://host:port")
        sentinels.append((parts.hostname, parts.port or 26379))
        if parts.path.strip("/"):
            db = int(parts.path.strip("/"))
        password = unquote(parts.password) if parts.password else password
        username = unquote(parts.username) if parts.username else username
    return SentinelAddress(tuple(sentinels), db, password, username)


def connect(url: str, master_name: str, **options: Any) -> redis.Redis:
    """A client of the Redis at ``url``; for Sentinel addresses, of the primary they name,
    found again after a failover."""
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **options)
    address = sentinel_address(url)
    timeouts = {k: v for k, v in options.items()
                if k in ("socket_timeout", "socket_connect_timeout")}
    sentinel = Sentinel(list(address.sentinels), sentinel_kwargs=timeouts)
    client: redis.Redis = sentinel.master_for(master_name, db=address.db,
                                              password=address.password,
                                              username=address.username, **options)
    return client
