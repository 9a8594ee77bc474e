"""Celery's floor: jobops' task and callback shapes with no LinkedIn call and no state.

``floor.verify_job_operation`` takes jobops' keyword arguments, decides every URN at once
but those the benchmark says LinkedIn holds IN_PROGRESS (``in_progress``: from the first
check for ``in_progress_seconds``, carried in the message, as the sandbox does), retries
itself for those with jobops' own wait (``jobops.core.cadence.backoff_seconds`` over the poll
interval and its cap), and publishes one callback per decided URN in one producer batch,
as jobops does. jobops' delivery settings (``bench.delivery``). Nothing on Celery can
deliver the same outcomes through the same tasks with less work. Run as
``celery -A bench.floor worker``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery, Task

from bench.delivery import delivery_settings
from jobops.core.cadence import backoff_seconds

QUEUE = os.environ.get("JOBOPS_QUEUE", "floor")
CALLBACK_QUEUE = os.environ.get("JOBOPS_CALLBACK_QUEUE", "pipeline")
POLL_SECONDS = float(os.environ.get("JOBOPS_POLL_INTERVAL_SECONDS", "60"))
MAX_POLL_SECONDS = float(os.environ.get("JOBOPS_MAX_POLL_INTERVAL_SECONDS", "300"))

app = Celery("floor")
app.conf.update(delivery_settings(), task_default_queue=QUEUE)


@app.task(bind=True, name="floor.verify_job_operation", max_retries=None)
def verify(self: Task, task_urns: list[str], operation: str, callbacks: dict[str, Any],
           context: dict[str, Any], in_progress: list[str] | None = None,
           in_progress_seconds: float = 0.0, flip_at: dict[str, float] | None = None,
           poll_round: int = 0) -> None:
    now = time.time()
    flips = dict(flip_at or {})
    for urn in in_progress or ():
        flips.setdefault(urn, now + in_progress_seconds)
    pending = [urn for urn in task_urns if flips.get(urn, 0.0) > now]
    decided = [urn for urn in task_urns if flips.get(urn, 0.0) <= now]
    with app.producer_or_acquire() as producer, producer.batch():
        for urn in decided:
            outcome = {"task_urn": urn, "operation": operation, "status": "SUCCEEDED",
                       "context": context, "decided_at": now}
            if urn in flips:
                outcome["flipped_at"] = flips[urn]
            app.send_task(callbacks["DEFAULT"], args=(outcome,), queue=CALLBACK_QUEUE,
                          producer=producer)
    if pending:
        raise self.retry(kwargs={
            "task_urns": pending, "operation": operation, "callbacks": callbacks,
            "context": context, "flip_at": {u: flips[u] for u in pending},
            "poll_round": poll_round + 1},
            countdown=backoff_seconds(poll_round, POLL_SECONDS, MAX_POLL_SECONDS))
