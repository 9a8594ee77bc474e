"""The fleet's one clock: the Redis server's TIME, read through a per-process offset."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

log = logging.getLogger(__name__)

#: How often each process measures its host clock against Redis's: in between, reading
#: the clock costs no round trip.
RESYNC_SECONDS = 60.0
#: After a failed measurement, the next try comes sooner.
RETRY_SECONDS = 5.0


class FleetClock:
    """``now()``: epoch seconds on the Redis server's clock.

    Due times, the pending registry, the status cache and the task lifespan are compared
    across processes and hosts, so each process reads them on the clock the limits already
    use (Redis's), not its host's. Celery's own countdowns stay on the clocks of the hosts
    that publish and hold them: a host clock that is off moves when a round runs by as
    much, never what the fleet decides about it.

    The limits' test offset (``jobops:clock:offset_ms``) moves their UTC day and window
    only: verifications keep real time, so moving the day does not age their tasks.
    """

    def __init__(self, store: redis.Redis, host: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._host = host
        self._monotonic = monotonic
        self._offset = 0.0
        self._synced_until = float("-inf")

    def now(self) -> float:
        if self._monotonic() >= self._synced_until:
            self._sync()
        return self._host() + self._offset

    @property
    def offset_seconds(self) -> float:
        """Redis's clock minus this host's, as last measured."""
        return self._offset

    def _sync(self) -> None:
        try:
            sent = self._host()
            seconds, micros = self._store.time()
            received = self._host()
        except redis.RedisError as error:
            # The last offset (none, at first) is the best guess until Redis answers.
            log.warning("could not read Redis's clock (%s); using the last offset, %.3f s",
                        type(error).__name__, self._offset)
            self._synced_until = self._monotonic() + RETRY_SECONDS
            return
        self._offset = seconds + micros / 1e6 - (sent + received) / 2
        self._synced_until = self._monotonic() + RESYNC_SECONDS
