"""Scheduling verifications: from a POST answer or from a list of task URNs.

Everything is checked before anything is sent: a malformed URN, operation, callback or
context raises :class:`jobops.errors.InvalidRequest` and nothing is enqueued.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from jobops.errors import InvalidRequest
from jobops.keys import refused_outcome_key
from jobops.outcomes import Operation, Status, build_outcome
from jobops.request import BATCH_CALLBACK, VerificationRequest, describe, parse_request
from tasks.callbacks import deliver, outcome_callback
from workers import app
from workers.runtime import runtime

VERIFY_TASK = "jobops.verify_job_operation"
# URNs per verify_job_operation message: a big request becomes several tasks, so no one
# message or run grows without bound (a POST answer, at most 700 URNs, is never split).
URNS_PER_TASK = 1_000


def _send(request: VerificationRequest, countdown_seconds: float | None) -> list[str]:
    rt = runtime()
    countdown = rt.settings.first_check_seconds if countdown_seconds is None \
        else countdown_seconds
    urns = list(request.task_urns)
    ids = []
    with app.producer_or_acquire() as producer:
        for start in range(0, len(urns), URNS_PER_TASK):
            verification_id = str(uuid.uuid4())
            kwargs = request.as_kwargs(urns[start:start + URNS_PER_TASK])
            # Registered first: a message lost in publishing is re-sent by the sweeper.
            with rt.redis.pipeline(transaction=False) as pipe:
                due_at = rt.clock.now() + countdown
                rt.pending.expect(verification_id, kwargs, due_at, pipe)
                if rt.share is not None:
                    rt.share.expect(kwargs["task_urns"], due_at,
                                    verification_id, pipe)
                pipe.execute()
            app.send_task(VERIFY_TASK, kwargs=kwargs, queue=rt.settings.queue,
                          countdown=countdown, task_id=verification_id, producer=producer,
                          kwargsrepr=describe(kwargs))
            ids.append(verification_id)
    return ids


def verify_urns(
    task_urns: list[str],
    operation: str,
    callbacks: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    requested_at: str | None = None,
    *,
    countdown_seconds: float | None = None,
) -> dict[str, Any]:
    """Schedule ``verify_job_operation`` for ``task_urns``; returns its id and counts."""
    request = parse_request(
        {
            "task_urns": task_urns,
            "operation": operation,
            "callbacks": callbacks,
            "context": context,
            "requested_at": requested_at,
        },
        now=runtime().clock.now(),
        strict=True,
    )
    ids = _send(request, countdown_seconds)
    return {"verification_id": ids[0], "verification_ids": ids,
            "task_urns": len(request.task_urns), "refused": 0}


def split_post_answer(answer: Any) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """Task URNs of accepted elements, and (index, element) of refused ones."""
    if not isinstance(answer, Mapping) or not isinstance(answer.get("elements"), list):
        raise InvalidRequest(
            "expected the JSON answer of POST /v2/simpleJobPostings: "
            '{"elements": [{"id": "urn:li:simpleJobPostingTask:…", "status": 202}, …]}'
        )
    urns: list[str] = []
    refused: list[tuple[int, dict[str, Any]]] = []
    for index, element in enumerate(answer["elements"]):
        if not isinstance(element, Mapping):
            raise InvalidRequest(f"elements[{index}] is not an object")
        status = element.get("status")
        if isinstance(status, int) and status >= 400:
            refused.append((index, dict(element)))
        elif "id" in element:
            urns.append(element["id"])
        else:
            raise InvalidRequest(
                f"elements[{index}] has neither a task id nor an error status: {element!r:.120}"
            )
    if not urns and not refused:
        raise InvalidRequest("the POST answer has no elements: nothing to verify")
    return urns, refused


def _refused_message(element: Mapping[str, Any]) -> str:
    error = element.get("error")
    if isinstance(error, Mapping) and error.get("message"):
        return str(error["message"])
    return f"refused at posting time with HTTP {element.get('status')}"


def schedule_from_answer(
    post_answer: Any,
    operation: str,
    callbacks: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    requested_at: str | None = None,
    *,
    countdown_seconds: float | None = None,
) -> dict[str, Any]:
    """Verify a POST answer: refused elements get FAILED outcomes now, the rest are polled."""
    urns, refused = split_post_answer(post_answer)
    now = runtime().clock.now()
    # Checked in full before any outcome is sent, with a placeholder URN when none exist.
    request = parse_request(
        {
            "task_urns": urns or ["urn:li:simpleJobPostingTask:none"],
            "operation": operation,
            "callbacks": callbacks,
            "context": context,
            "requested_at": requested_at,
        },
        now=now,
        strict=True,
    )
    ids = _send(request, countdown_seconds) if urns else [str(uuid.uuid4())]
    verification_id = ids[0]
    if refused:
        rt = runtime()
        outcomes = []
        for index, element in refused:
            outcome = build_outcome(
                task_urn=None,
                status=Status.FAILED,
                operation=Operation(request.operation),
                context=dict(request.context),
                requested_at=request.requested_at,
                decided_at=now,
                error_message=_refused_message(element),
            )
            outcome["element_index"] = index
            outcomes.append((refused_outcome_key(verification_id, index), outcome))
        deliver(app, rt, [(key, o, outcome_callback(request.callbacks, o["status"]))
                          for key, o in outcomes],
                batch=request.callbacks.get(BATCH_CALLBACK))
        rt.metrics.flush(rt.redis, force=True)
    return {
        "verification_id": verification_id,
        "verification_ids": ids,
        "task_urns": len(urns),
        "refused": len(refused),
    }


@app.task(name="jobops.schedule_verification")
def schedule_verification(
    post_answer: Any,
    operation: str,
    callbacks: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    requested_at: str | None = None,
) -> dict[str, Any]:
    """Chain after a posting task: ``post_jobs.s(jobs) | schedule_verification.s(...)``."""
    return schedule_from_answer(post_answer, operation, callbacks, context, requested_at)
