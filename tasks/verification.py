"""``jobops.verify_job_operation``: poll, deliver outcomes, retry with what is pending."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Task
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from jobops.errors import InvalidRequest
from jobops.keys import outcome_key
from jobops.request import parse_request
from jobops.verification import run_once
from tasks.callbacks import deliver
from workers import app
from workers.runtime import runtime

log = logging.getLogger(__name__)


class StillPending(Exception):
    """Raised as the reason of a retry; Flower shows its text."""


# Redis or the broker failing mid-run must not lose the verification: Celery retries it
# (same arguments; outcomes already delivered are skipped by their record).
@app.task(
    bind=True,
    name="jobops.verify_job_operation",
    max_retries=None,
    autoretry_for=(RedisError, OperationalError, ConnectionError),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
)
def verify_job_operation(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Verify the task URNs of one CREATE/UPDATE/RENEW/CLOSE call."""
    now = time.time()
    try:
        if args:
            raise InvalidRequest("verify_job_operation takes keyword arguments only")
        request = parse_request(kwargs, now=now, strict=False)
    except InvalidRequest as error:
        # A poison message: retrying cannot fix it, so it is logged and dropped.
        log.error("verification %s rejected: %s", self.request.id, error)
        return {"rejected": str(error)}

    rt = runtime()
    result = run_once(request, rt.client, rt.settings, now)
    deliver(
        app,
        rt.redis,
        rt.settings,
        [(outcome_key(o["task_urn"]), o) for o in result.outcomes],
        request.callbacks,
    )
    summary = result.summary(request.operation.value, request.tally)
    log.info("verification %s round %d: %s", self.request.id, request.poll_round, summary)
    if result.pending and result.next_check_seconds is not None:
        if result.error is not None:
            why = f"LinkedIn call failed ({result.error})"
        else:
            why = f"{len(result.pending)} of {len(request.task_urns)} URNs still IN_PROGRESS"
        reason = StillPending(f"{why}, next check in {result.next_check_seconds:.0f} s")
        raise self.retry(
            kwargs=request.as_kwargs(result.pending, request.poll_round + 1,
                                     result.tally(request.tally)),
            countdown=result.next_check_seconds,
            exc=reason,
        )
    return summary
