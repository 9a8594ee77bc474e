"""The workers' background loops (sweeper, batch flusher): one loop helper, and their view
of a Redis outage — one warning when it starts, one line when it ends, instead of a
traceback every turn."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

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


def run_forever(name: str, step: Callable[[], float], error_wait_seconds: float,
                logger: logging.Logger, first_wait_seconds: float = 0.0) -> None:
    """Call ``step`` until the process ends, sleeping the seconds it returns in between.

    An unreachable Redis is an outage (one warning, one line when it ends); any other
    failure is logged with its traceback; either way the loop goes on.
    """
    outage = Outage(name, logger)
    time.sleep(first_wait_seconds)
    while True:
        try:
            wait_seconds = step()
            outage.answered()
        except UNREACHABLE as error:
            wait_seconds = error_wait_seconds
            outage.failed(error, wait_seconds)
        except Exception:  # noqa: BLE001 - a background loop must outlive any one failure
            wait_seconds = error_wait_seconds
            # Worded like a task failure so the test suite's log check catches it.
            logger.exception("%s failed; trying again in %.1f s", name, wait_seconds)
        time.sleep(wait_seconds)


def start(name: str, step: Callable[[], float], error_wait_seconds: float,
          logger: logging.Logger, first_wait_seconds: float = 0.0) -> threading.Thread:
    """``run_forever`` on a daemon thread named ``jobops-<name>``."""
    thread = threading.Thread(target=run_forever, name=f"jobops-{name.replace(' ', '-')}",
                              args=(name, step, error_wait_seconds, logger,
                                    first_wait_seconds), daemon=True)
    thread.start()
    return thread
