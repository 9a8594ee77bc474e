"""One access token for every process and host, kept in Redis (see ``SharedTokenCache``)."""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from jobops.core.errors import TokenError
from jobops.state import keys, lua
from jobops.state.replies import text, text_or_none

log = logging.getLogger(__name__)

#: How often a process waiting for another's token refresh looks again (plus jitter).
TOKEN_WAIT_SECONDS = 0.05




class SharedTokenCache:
    """One access token for the whole fleet, kept in Redis, refreshed by one process.

    Each process remembers the token until its Redis entry would expire, so a steady
    state costs no Redis round trip per call. A refresh takes a lock with a timeout (a
    crashed refresher blocks nobody longer than that), re-reads the cache under it, and
    stores the new token with a TTL of ``expires_in`` minus the refresh margin.
    """

    def __init__(
        self,
        store: redis.Redis,
        fetch: Callable[[], tuple[str, float]],
        refresh_margin_seconds: float,
        lock_timeout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_refresh: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._fetch = fetch
        self._on_refresh = on_refresh
        self._margin = refresh_margin_seconds
        self._lock_timeout_seconds = lock_timeout_seconds
        self._clock = clock
        self._sleep = sleep
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._memo: tuple[str, float] | None = None  # token, local time to drop it
        self._guard = threading.Lock()
        self._invalidate = lua.register(store, "token_invalidate")
        self._release = lua.register(store, "release_if_owner")
        self.refreshes = 0

    def token(self) -> str:
        with self._guard:
            if self._memo is not None and self._clock() < self._memo[1]:
                return self._memo[0]
            self._memo = None
            return self._shared_token()

    def invalidate(self, token: str) -> None:
        with self._guard:
            if self._memo is not None and self._memo[0] == token:
                self._memo = None
            self._invalidate(keys=[keys.TOKEN], args=[token])

    def _read(self) -> str | None:
        with self._store.pipeline(transaction=False) as pipe:
            pipe.hget(keys.TOKEN, "access_token")
            pipe.pttl(keys.TOKEN)
            raw, ttl_ms = pipe.execute()
        if raw is None or ttl_ms is None or ttl_ms <= 0:
            return None
        token = text(raw)
        self._memo = (token, self._clock() + ttl_ms / 1000)
        return token

    def _shared_token(self) -> str:
        gave_up_at = self._clock() + self._lock_timeout_seconds * 2
        while True:
            token = self._read()
            if token is not None:
                return token
            if self._store.set(keys.TOKEN_LOCK, self._owner, nx=True,
                               px=int(self._lock_timeout_seconds * 1000)):
                try:
                    return self._read() or self._refresh()
                finally:
                    self._release(keys=[keys.TOKEN_LOCK], args=[self._owner])
            if self._clock() > gave_up_at:
                raise TokenError(
                    "timed out waiting for another process to refresh the token",
                    resolution="check LINKEDIN_TOKEN_URL; JOBOPS_TOKEN_LOCK_SECONDS bounds "
                    "the wait",
                )
            # Jittered, so the processes waiting on one refresh do not read in lockstep.
            self._sleep(TOKEN_WAIT_SECONDS * (1 + random.random()))

    def _refresh(self) -> str:
        token, expires_in = self._fetch()
        self.refreshes += 1
        self._on_refresh()
        # Never keep a token for less than half its life, whatever the margin says.
        keep_ms = int(max(expires_in - self._margin, expires_in / 2) * 1000)
        now_ms = int(time.time() * 1000)
        with self._store.pipeline() as pipe:
            pipe.hset(keys.TOKEN, mapping={"access_token": token, "fetched_at_ms": now_ms,
                                            "expires_at_ms": now_ms + int(expires_in * 1000)})
            pipe.pexpire(keys.TOKEN, keep_ms)
            pipe.execute()
        self._memo = (token, self._clock() + keep_ms / 1000)
        log.info("access token refreshed for the fleet; valid %.0f s", expires_in)
        return token

    def describe(self) -> dict[str, Any]:
        """Age and expiry of the shared token, never the token itself."""
        with self._store.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.TOKEN, ["fetched_at_ms", "expires_at_ms"])
            pipe.pttl(keys.TOKEN)
            pipe.get(keys.TOKEN_LOCK)
            (fetched, expires), ttl_ms, lock = pipe.execute()
        locked_by = text_or_none(lock)
        if fetched is None:
            return {"token": "none cached", "locked_by": locked_by}
        now_ms = time.time() * 1000
        return {
            "token": "cached",
            "age_seconds": round((now_ms - int(fetched)) / 1000, 1),
            "expires_in_seconds": round((int(expires) - now_ms) / 1000, 1),
            "renewed_in_seconds": round(max(ttl_ms, 0) / 1000, 1),
            "locked_by": locked_by,
        }

    def __repr__(self) -> str:
        return f"SharedTokenCache(refreshes={self.refreshes})"
