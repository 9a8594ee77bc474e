"""Flushes batched callbacks by time, and re-sends sealed batches whose sender died.

Runs as a thread in each worker's main process. Any number of them may flush at once:
sealing is one Lua script (see jobops.state.batches), so each outcome is sealed once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery.signals import worker_ready

from tasks.callbacks import publish_batches
from workers import app
from workers.outages import UNREACHABLE, Outage
from workers.runtime import Runtime, runtime

log = logging.getLogger(__name__)
# Longest sleep between looks: a batch opened by another process is seen within this.
IDLE_WAIT_SECONDS = 0.5
MIN_WAIT_SECONDS = 0.02
ERROR_WAIT_SECONDS = 1.0


def flush_once(rt: Runtime) -> float:
    """Seal and send every batch past its deadline; returns the seconds to the next look."""
    found = rt.batches.flush()
    if found.stale:
        log.warning("re-sending %d sealed batches whose sender did not finish: %s",
                    len(found.stale), ", ".join(found.stale[:5]))
    if publish_batches(app, rt, found.sealed + found.stale):
        rt.metrics.flush(rt.redis)
    if found.next_due_seconds is None:
        return IDLE_WAIT_SECONDS
    return min(IDLE_WAIT_SECONDS, max(MIN_WAIT_SECONDS, found.next_due_seconds))


def _loop() -> None:
    rt = runtime()
    outage = Outage("batch flusher", log)
    while True:
        try:
            wait_seconds = flush_once(rt)
            outage.answered()
        except UNREACHABLE as error:
            outage.failed(error, ERROR_WAIT_SECONDS)
            wait_seconds = ERROR_WAIT_SECONDS
        except Exception:  # noqa: BLE001 - the flusher must outlive any one failure
            # Worded like a task failure so the test suite's log check catches it.
            log.exception("batch flush failed; retrying in %.0f s", ERROR_WAIT_SECONDS)
            wait_seconds = ERROR_WAIT_SECONDS
        time.sleep(wait_seconds)


@worker_ready.connect
def start_batch_flusher(**_: Any) -> None:
    threading.Thread(target=_loop, name="jobops-batch-flusher", daemon=True).start()
