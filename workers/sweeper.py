"""Re-sends verifications whose next round is overdue (see jobops.registry).

Runs as a thread in each worker's main process; a lock in Redis lets one sweep at a time
for the whole fleet.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery.signals import worker_ready

from jobops import keys
from tasks.scheduling import VERIFY_TASK
from workers import app
from workers.outages import UNREACHABLE, Outage
from workers.runtime import Runtime, runtime

log = logging.getLogger(__name__)


def sweep_once(rt: Runtime, now: float) -> int:
    """Re-send every overdue round, if no other process is sweeping; returns how many."""
    interval = rt.settings.sweep_interval_seconds
    if not rt.redis.set(keys.SWEEP_LOCK, "1", nx=True, px=int(interval * 1000)):
        return 0
    overdue = rt.pending.take_overdue(now)
    for verification_id, kwargs in overdue:
        # The same task id: if the lost message turns up after all, its round lease
        # tells the two copies apart.
        app.send_task(VERIFY_TASK, kwargs=kwargs, task_id=verification_id,
                      queue=rt.settings.queue)
    if overdue:
        log.warning("re-sent %d overdue verifications: %s", len(overdue),
                    ", ".join(i for i, _ in overdue[:5]))
    return len(overdue)


def _loop() -> None:
    rt = runtime()
    outage = Outage("sweeper", log)
    while True:
        time.sleep(rt.settings.sweep_interval_seconds)
        try:
            sweep_once(rt, rt.clock.now())
            outage.answered()
        except UNREACHABLE as error:
            outage.failed(error, rt.settings.sweep_interval_seconds)
        except Exception:  # noqa: BLE001 - the sweeper must outlive any one failure
            log.exception("sweep failed; trying again next interval")


@worker_ready.connect
def start_sweeper(**_: Any) -> None:
    threading.Thread(target=_loop, name="jobops-sweeper", daemon=True).start()
