"""Dead letters: what came off a jobops queue that no worker could run, kept to be read."""

from __future__ import annotations

import base64
import json
from typing import Any, TypedDict

import redis

from jobops.state import keys, lua

#: Dead letters kept; the oldest go first. One holds at most MAX_BODY_BYTES of its bytes.
MAX_DEAD_LETTERS = 1_000
#: Bytes of one dead letter kept (the size says how many there were): a few megabytes of
#: garbage pushed many times must not fill Redis.
MAX_BODY_BYTES = 64 * 1024
#: Longest reason kept.
MAX_REASON_CHARS = 300


class DeadLetter(TypedDict):
    queue: str
    reason: str
    #: Bytes of the raw message as it was on the queue.
    size: int
    #: The first MAX_BODY_BYTES of them, base64 encoded.
    body_base64: str
    truncated: bool
    #: Redis time (epoch seconds) it was set aside.
    at: float


class DeadLetters:
    """The most recent ``MAX_DEAD_LETTERS``, in ``jobops:dead-letters`` in the broker's Redis.

    Anything pushed onto the queue that is not a message kombu can read (bytes that are not
    JSON, JSON that is not a kombu message) would stop a worker; a message Celery refuses
    (an unknown task, a malformed one) would be dropped with a log line. The worker keeps
    each here instead (see ``workers.broker``). ``jobops dead-letters`` shows them; nothing
    runs them again.
    """

    def __init__(self, store: redis.Redis, cap: int = MAX_DEAD_LETTERS) -> None:
        self._store = store
        self._cap = cap
        self._add = lua.register(store, "dead_letter_add")

    def add(self, queue: str, raw: bytes, reason: str) -> int:
        """Keep ``raw``, taken off ``queue``; returns how many are kept now."""
        entry = {"queue": queue, "reason": reason[:MAX_REASON_CHARS], "size": len(raw),
                 "body_base64": base64.b64encode(raw[:MAX_BODY_BYTES]).decode("ascii"),
                 "truncated": len(raw) > MAX_BODY_BYTES}
        return int(self._add(keys=[keys.DEAD_LETTERS], args=[json.dumps(entry), self._cap]))

    def listed(self, limit: int = MAX_DEAD_LETTERS) -> list[DeadLetter]:
        """The most recent first."""
        entries: list[Any] = [json.loads(raw) for raw in
                              self._store.lrange(keys.DEAD_LETTERS, 0, limit - 1)]
        return entries

    def count(self) -> int:
        return int(self._store.llen(keys.DEAD_LETTERS))

    def take(self) -> list[DeadLetter]:
        """Every dead letter, removed in the same step (the most recent first)."""
        with self._store.pipeline(transaction=True) as pipe:
            pipe.lrange(keys.DEAD_LETTERS, 0, -1)
            pipe.delete(keys.DEAD_LETTERS)
            raw, _ = pipe.execute()
        return [json.loads(entry) for entry in raw]


def body(letter: DeadLetter) -> bytes:
    return base64.b64decode(letter["body_base64"])
