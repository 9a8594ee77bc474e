"""What the run reads in its Redis while it goes on; a read during a restart answers None."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import redis

from jobops.state import keys
from tests.chaos.keys import OUTCOMES_KEY

T = TypeVar("T")
#: kombu's Redis transport keeps delivered, unacknowledged messages here (its default).
UNACKED_KEY = "unacked"


class Observer:
    def __init__(self, url: str, queues: list[str]) -> None:
        self.store = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=1)
        self.queues = queues

    def delivered(self) -> int | None:
        """Outcomes the consumer recorded (first copies only)."""
        return self._read(lambda: int(self.store.llen(OUTCOMES_KEY)))

    def pending_urns(self) -> int | None:
        """URNs jobops' pending registry still waits for."""
        return self._read(lambda: sum(int(n) for n in self.store.hvals(keys.PENDING_URNS)))

    def leftovers(self) -> dict[str, int] | None:
        """What could still deliver another copy of an outcome: verifications pending,
        messages queued or held unacknowledged."""
        def read() -> dict[str, int]:
            with self.store.pipeline(transaction=False) as pipe:
                pipe.zcard(keys.PENDING)
                pipe.hlen(UNACKED_KEY)
                for queue in self.queues:
                    pipe.llen(queue)
                pending, unacked, *queued = pipe.execute()
            return {"pending_verifications": pending, "unacked_messages": unacked,
                    "queued_messages": sum(queued)}
        return self._read(read)

    def quiet(self) -> bool:
        left = self.leftovers()
        return left is not None and not any(left.values())

    def _read(self, read: Callable[[], T]) -> T | None:
        try:
            return read()
        except redis.RedisError:
            return None
