"""Verifications whose runs keep failing: listed with their last error until they end."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import redis
from redis.client import Pipeline

from jobops.state import keys

#: Longest error text kept: enough to recognise it, never a whole traceback.
MAX_ERROR_CHARS = 500


def error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]


class StuckVerifications:
    """Per verification, how many runs failed in a row and the last error.

    A run that raises something unexpected is retried with backoff; keeping its failures
    lets an operator see it (``jobops stuck``, the ``jobops_stuck_verifications`` gauge)
    long before the task lifespan's deadline ends it.
    """

    def __init__(self, store: redis.Redis, ttl_seconds: int) -> None:
        self._store = store
        self._ttl_seconds = ttl_seconds

    def failed(self, verification_id: str, kwargs: Mapping[str, Any], error: BaseException,
               now: float) -> int:
        """Count a failed run; returns how many failed in a row."""
        raw = self._store.hget(keys.STUCK, verification_id)
        earlier = json.loads(raw) if raw else {}
        urns = kwargs.get("task_urns")
        entry = {
            "verification_id": verification_id,
            "operation": str(kwargs.get("operation"))[:20],
            "urns": len(urns) if isinstance(urns, list) else 0,
            "failures": int(earlier.get("failures", 0)) + 1,
            "first_failed_at": earlier.get("first_failed_at", now),
            "last_failed_at": now,
            "last_error": error_text(error),
        }
        with self._store.pipeline(transaction=False) as pipe:
            pipe.hset(keys.STUCK, verification_id, json.dumps(entry))
            pipe.expire(keys.STUCK, self._ttl_seconds)
            pipe.execute()
        return int(entry["failures"])

    def cleared(self, verification_id: str, pipe: Pipeline | None = None) -> None:
        """The verification ran a round through (or ended): it is not stuck."""
        (pipe or self._store).hdel(keys.STUCK, verification_id)

    def listed(self) -> list[dict[str, Any]]:
        """Every stuck verification, the longest failing first."""
        entries = [json.loads(raw) for raw in self._store.hvals(keys.STUCK)]
        return sorted(entries, key=lambda e: e["first_failed_at"])

    def count(self) -> int:
        return int(self._store.hlen(keys.STUCK))
