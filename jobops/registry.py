"""Every unfinished verification, with when its next run is due: the safety net.

The Redis broker can lose a message (a worker dies between taking a message and
recording it as unacknowledged — kombu does those in two steps). So each verification
also registers its next round here, before that round's message is published; a sweeper
re-sends any round that is overdue by more than a grace period (longer than the broker's
own redelivery), under the same task id, so run leases drop it if the original shows up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import redis

from jobops import keys


class PendingRegistry:
    def __init__(self, store: redis.Redis, grace_seconds: float, ttl_seconds: int) -> None:
        self._store = store
        self.grace_seconds = grace_seconds
        self._ttl_seconds = ttl_seconds

    def expect(self, verification_id: str, kwargs: Mapping[str, Any], due_at: float) -> None:
        """The next round of ``verification_id`` runs with ``kwargs`` at ``due_at``."""
        with self._store.pipeline(transaction=True) as pipe:
            pipe.set(keys.pending_args_key(verification_id), json.dumps(kwargs),
                     ex=self._ttl_seconds)
            pipe.zadd(keys.PENDING, {verification_id: due_at + self.grace_seconds})
            pipe.hset(keys.PENDING_URNS, verification_id, len(kwargs.get("task_urns") or []))
            pipe.execute()

    def forget(self, verification_id: str) -> None:
        with self._store.pipeline(transaction=True) as pipe:
            pipe.zrem(keys.PENDING, verification_id)
            pipe.delete(keys.pending_args_key(verification_id))
            pipe.hdel(keys.PENDING_URNS, verification_id)
            pipe.execute()

    def take_overdue(self, now: float, limit: int = 500) -> list[tuple[str, dict[str, Any]]]:
        """Overdue rounds, each pushed one grace period later so it is taken once."""
        found = self._store.zrangebyscore(keys.PENDING, "-inf", now, start=0, num=limit)
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in found]
        if not ids:
            return []
        raw = self._store.mget([keys.pending_args_key(i) for i in ids])
        with self._store.pipeline(transaction=False) as pipe:
            for verification_id, args in zip(ids, raw, strict=True):
                if args is None:
                    pipe.zrem(keys.PENDING, verification_id)
                else:
                    pipe.zadd(keys.PENDING, {verification_id: now + self.grace_seconds})
            pipe.execute()
        return [(i, json.loads(a)) for i, a in zip(ids, raw, strict=True) if a is not None]

    def urns_with_context(self, key: str, value: str) -> set[str]:
        """Pending URNs of verifications whose context has ``key`` equal to ``value``."""
        urns: set[str] = set()
        for name in self._store.scan_iter(match=keys.pending_args_key("*"), count=1000):
            if name == keys.PENDING_URNS.encode():
                continue
            raw = self._store.get(name)
            if raw is None:
                continue
            kwargs = json.loads(raw)
            if str((kwargs.get("context") or {}).get(key)) == value:
                urns.update(kwargs.get("task_urns") or [])
        return urns

    def count(self) -> tuple[int, int]:
        """Unfinished verifications, and their pending task URNs."""
        with self._store.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.PENDING)
            pipe.hvals(keys.PENDING_URNS)
            verifications, urns = pipe.execute()
        return int(verifications), sum(int(n) for n in urns)
