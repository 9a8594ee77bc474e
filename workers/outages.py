"""The background loops' view of a Redis outage: one warning when it starts, one line when
it ends, instead of a traceback every turn of the loop."""

from __future__ import annotations

import logging

import redis
from kombu.exceptions import OperationalError

#: What a loop sees while Redis is down or restarting: redis-py's errors, and kombu's
#: wrapping of them when a publish gives up.
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError,
               OperationalError)


class Outage:
    """Whether the loop named ``loop`` last found Redis unreachable."""

    def __init__(self, loop: str, logger: logging.Logger) -> None:
        self.loop, self.log = loop, logger
        self.since_error: str | None = None

    def failed(self, error: BaseException, retry_seconds: float) -> None:
        if self.since_error is None:
            self.since_error = f"{type(error).__name__}: {error}"
            self.log.warning("%s: Redis unreachable (%s); trying again every %.0f s",
                             self.loop, self.since_error, retry_seconds)

    def answered(self) -> None:
        if self.since_error is not None:
            self.log.info("%s: Redis answers again", self.loop)
            self.since_error = None
