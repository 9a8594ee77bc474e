"""Flushes batched callbacks by time, and re-sends sealed batches whose sender died.

Runs as a thread in each worker's main process. Any number of them may flush at once:
sealing is one Lua script (see jobops.state.batches), so each outcome is sealed once.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready

from workers import app, loops
from workers.callbacks import publish_batches
from workers.runtime import Fleet, runtime

log = logging.getLogger(__name__)
# Longest sleep between looks: a batch opened by another process is seen within this.
IDLE_WAIT_SECONDS = 0.5
MIN_WAIT_SECONDS = 0.02
ERROR_WAIT_SECONDS = 1.0


def flush_once(fleet: Fleet) -> float:
    """Seal and send every batch past its deadline; returns the seconds to the next look."""
    found = fleet.batches.flush()
    if found.stale:
        log.warning("re-sending %d sealed batches whose sender did not finish: %s",
                    len(found.stale), ", ".join(found.stale[:5]))
    if publish_batches(app, fleet, found.sealed + found.stale):
        fleet.metrics.flush(fleet.redis)
    if found.next_due_seconds is None:
        return IDLE_WAIT_SECONDS
    return min(IDLE_WAIT_SECONDS, max(MIN_WAIT_SECONDS, found.next_due_seconds))


@worker_ready.connect
def start_batch_flusher(**_: Any) -> None:
    fleet = runtime()
    loops.start("batch flusher", lambda: flush_once(fleet), ERROR_WAIT_SECONDS, log)
