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
from redis.client import Pipeline

from jobops import keys, scripts

# KEYS: pending set, the id's arguments, pending URN counts. ARGV: verification id.
_FORGET = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""


class PendingRegistry:
    def __init__(self, store: redis.Redis, grace_seconds: float, ttl_seconds: int) -> None:
        self._store = store
        self._forget = store.register_script(_FORGET)
        self.grace_seconds = grace_seconds
        self._ttl_seconds = ttl_seconds

    def expect(self, verification_id: str, kwargs: Mapping[str, Any], due_at: float,
               pipe: Pipeline | None = None) -> None:
        """The next round of ``verification_id`` runs with ``kwargs`` at ``due_at``.

        With ``pipe``, the commands join it and run when its owner executes it.
        """
        with scripts.joined(self._store, pipe) as target:
            # The arguments first: the sweeper skips an id whose arguments are missing.
            target.set(keys.pending_args_key(verification_id), json.dumps(kwargs),
                       ex=self._ttl_seconds)
            target.zadd(keys.PENDING, {verification_id: due_at + self.grace_seconds})
            target.hset(keys.PENDING_URNS, verification_id,
                        len(kwargs.get("task_urns") or []))

    def forget(self, verification_id: str, pipe: Pipeline | None = None) -> None:
        with scripts.joined(self._store, pipe) as target:
            scripts.queue(target, self._forget, [keys.PENDING, keys.pending_args_key(
                verification_id), keys.PENDING_URNS], [verification_id])

    def arguments(self, verification_ids: list[str]) -> list[dict[str, Any] | None]:
        """The registered arguments of each verification's next round, None if unknown."""
        if not verification_ids:
            return []
        raw = self._store.mget([keys.pending_args_key(i) for i in verification_ids])
        return [None if r is None else json.loads(r) for r in raw]

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
        for name in self._store.scan_iter(match=keys.PENDING_ARGS_PATTERN, count=1000):
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
