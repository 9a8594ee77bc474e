"""``jobops.schedule_verification``: a pipeline's POST answer, scheduled by name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import Task

from jobops.core.errors import InvalidRequest
from jobops.core.request import SCHEDULE_TASK
from workers import app
from workers.scheduling import schedule_from_answer


@app.task(bind=True, name=SCHEDULE_TASK, throws=(InvalidRequest,))
def schedule_verification(
    self: Task,
    post_answer: Any,
    operation: str,
    callbacks: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    requested_at: str | None = None,
    countdown_seconds: float | None = None,
) -> dict[str, Any]:
    """Chain after a posting task: ``post_jobs.s(jobs) | schedule_verification.s(...)``.

    Idempotent: a message run twice (handed back when its worker died) schedules once,
    as its task id is the idempotency key. Bad input fails it with InvalidRequest, and
    nothing is enqueued.
    """
    return schedule_from_answer(post_answer, operation, callbacks, context, requested_at,
                                countdown_seconds=countdown_seconds,
                                idempotency_key=self.request.id)
