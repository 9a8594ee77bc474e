"""Celery's floor: jobops' task and callback traffic with no LinkedIn call at all.

One task per operation, configured as jobops' own app (acknowledged late, events on),
which retries itself once for the URNs the benchmark says are IN_PROGRESS at the first
check and sends one callback per URN. No implementation on Celery does less work for the
same outcomes. Run by bench.compare as ``celery -A bench.floor worker``.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery, Task

from settings import celery_config, get_settings

settings = get_settings()
app = Celery("floor")
app.conf.update(celery_config(settings))
app.conf.task_routes = {"floor.*": {"queue": settings.queue, "routing_key": settings.queue}}


@app.task(bind=True, name="floor.verify", max_retries=None)
def verify(self: Task, task_urns: list[str], operation: str, callbacks: dict[str, Any],
           context: dict[str, Any], in_progress: list[str] | None = None) -> None:
    if in_progress:
        raise self.retry(kwargs={"task_urns": in_progress, "operation": operation,
                                 "callbacks": callbacks, "context": context},
                         countdown=settings.poll_interval_seconds)
    with app.producer_or_acquire() as producer:
        for urn in task_urns:
            outcome = {"task_urn": urn, "operation": operation, "status": "SUCCEEDED",
                       "context": context, "decided_at": time.time()}
            app.send_task(callbacks["DEFAULT"], args=(outcome,),
                          queue=settings.callback_queue, producer=producer)
