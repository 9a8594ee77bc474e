"""Scheduling verifications: from a POST answer or from a list of task URNs."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from redis.exceptions import WatchError

from jobops.core.errors import InvalidRequest
from jobops.core.outcomes import Operation, Status, build_outcome
from jobops.core.request import (
    BATCH_CALLBACK,
    MAX_ANSWER_ELEMENTS,
    VERIFY_TASK,
    VerificationRequest,
    describe,
    parse_countdown,
    parse_idempotency_key,
    parse_request,
)
from jobops.state.keys import refused_outcome_key, scheduled_key
from workers import app
from workers.callbacks import deliver, outcome_callback
from workers.config import countdown_for_broker, on_rabbitmq
from workers.release import ensure_release
from workers.runtime import Fleet, runtime

# URNs per verify_job_operation message: a big request becomes several tasks, so no one
# message or run grows without bound (a POST answer, at most 700 URNs, is never split).
URNS_PER_TASK = 1_000
# Characters of LinkedIn's message kept in the outcome of an element refused at posting.
MAX_REFUSED_MESSAGE_CHARS = 2_000
_NAMESPACE = uuid.UUID("0d6c7b1e-5a2f-4d8e-9c3b-7e1f2a4b6c8d")
# jobops:scheduled:<id>: registered (maybe not yet published), then published.
REGISTERED = "registered"
PUBLISHED = "published"


def verification_id(idempotency_key: str | None, index: int) -> str:
    """The id of a request's ``index``-th verification: derived from its idempotency key,
    so running the request again names the same verifications; else a fresh one."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_NAMESPACE, f"{index}:{idempotency_key}"))


def _register(fleet: Fleet, verification_id: str, kwargs: dict[str, Any], due_at: float,
              once: bool, held: bool) -> bool:
    """Register a verification's first round; returns whether its message is to be sent
    (or, ``held``, its release made sure of).

    With ``once``, only the first run registers, atomically with its marker; a later one
    sends the message only if no run noted it as published.
    """
    if not once:
        with fleet.redis.pipeline(transaction=False) as pipe:
            _queue_registration(fleet, verification_id, kwargs, due_at, pipe, held)
            pipe.execute()
        return True
    marker = scheduled_key(verification_id)
    with fleet.redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(marker)
                state = pipe.get(marker)
                if state is not None:
                    return state not in (PUBLISHED, PUBLISHED.encode())
                pipe.multi()
                pipe.set(marker, REGISTERED, ex=fleet.records.ttl_seconds)
                _queue_registration(fleet, verification_id, kwargs, due_at, pipe, held)
                pipe.execute()
                return True
            except WatchError:
                continue  # another run registered it meanwhile: read what it wrote


def _queue_registration(fleet: Fleet, verification_id: str, kwargs: dict[str, Any],
                        due_at: float, pipe: Any, held: bool) -> None:
    # Registered before publishing: a message lost in publishing is re-sent by the sweeper,
    # which searches the queue named here first (no worker may consume it yet).
    fleet.pending.expect(verification_id, kwargs, due_at, pipe, queue=fleet.settings.queue,
                         held=held)
    if fleet.status_cache is not None:
        fleet.status_cache.expect(kwargs["task_urns"], due_at, verification_id, pipe)


def _note_published(fleet: Fleet, verification_id: str) -> None:
    fleet.redis.set(scheduled_key(verification_id), PUBLISHED, ex=fleet.records.ttl_seconds)


def _send(request: VerificationRequest, countdown: float, idempotency_key: str | None
          ) -> list[str]:
    """Register and publish the request's verifications; returns their ids.

    Scheduling can be idempotent: given an idempotency key (the ``schedule_verification``
    task always uses its own task id), verification ids and the callback ids of elements
    refused at posting time derive from it, and each verification is registered once
    (``jobops:scheduled:<id>``). Run again — a message handed back after its worker died —
    it sends nothing new; if the first run died between registering and publishing, it
    publishes the message, with the same task id (the round's lease runs two copies once).
    """
    fleet = runtime()
    urns = list(request.task_urns)
    ids = []
    # On RabbitMQ a first round waits in Redis for its second's release message rather
    # than as a countdown message of its own (see workers.release).
    held = countdown > 0 and on_rabbitmq(fleet.settings)
    with app.producer_or_acquire() as producer:
        for index, start in enumerate(range(0, len(urns), URNS_PER_TASK)):
            own_id = verification_id(idempotency_key, index)
            ids.append(own_id)
            kwargs = request.as_kwargs(urns[start:start + URNS_PER_TASK])
            due_at = fleet.clock.now() + countdown
            if not _register(fleet, own_id, kwargs, due_at, once=idempotency_key is not None,
                             held=held):
                continue
            if held:
                ensure_release(fleet, due_at)
            else:
                app.send_task(VERIFY_TASK, kwargs=kwargs, queue=fleet.settings.queue,
                              countdown=countdown, task_id=own_id, producer=producer,
                              kwargsrepr=describe(kwargs))
            if idempotency_key is not None:
                _note_published(fleet, own_id)
    return ids


def _checked(kwargs: dict[str, Any], countdown_seconds: Any, idempotency_key: Any, now: float
             ) -> tuple[VerificationRequest, float, str | None]:
    """The request, its first countdown and its idempotency key, all checked before
    anything is sent: a malformed URN, operation, callback, context or countdown raises
    :class:`jobops.core.errors.InvalidRequest` and nothing is enqueued."""
    cadence = runtime().settings.cadence
    max_seconds = cadence.max_countdown_seconds
    countdown = countdown_for_broker(runtime().settings, cadence.first_check_seconds
                                     if countdown_seconds is None else
                                     parse_countdown(countdown_seconds, "countdown_seconds",
                                                     max_seconds))
    key = parse_idempotency_key(idempotency_key)
    request = parse_request(kwargs, now=now, strict=True, max_countdown_seconds=max_seconds)
    return request, countdown, key


def verify_urns(
    task_urns: list[str],
    operation: str,
    callbacks: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    requested_at: str | None = None,
    *,
    countdown_seconds: float | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Schedule ``verify_job_operation`` for ``task_urns``; returns its id and counts.

    ``idempotency_key``: a name of yours for this request; called again with it, the same
    ids come back and nothing new is scheduled.
    """
    request, countdown, key = _checked(
        {"task_urns": task_urns, "operation": operation, "callbacks": callbacks,
         "context": context, "requested_at": requested_at},
        countdown_seconds, idempotency_key, runtime().clock.now())
    ids = _send(request, countdown, key)
    return {"verification_id": ids[0], "verification_ids": ids,
            "task_urns": len(request.task_urns), "refused": 0}


def split_post_answer(answer: Any) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """Task URNs of accepted elements, and (index, element) of refused ones."""
    if not isinstance(answer, Mapping) or not isinstance(answer.get("elements"), list):
        raise InvalidRequest(
            "expected the JSON answer of POST /v2/simpleJobPostings: "
            '{"elements": [{"id": "urn:li:simpleJobPostingTask:…", "status": 202}, …]}'
        )
    if len(answer["elements"]) > MAX_ANSWER_ELEMENTS:
        raise InvalidRequest(
            f"the POST answer has {len(answer['elements'])} elements, more than "
            f"MAX_ANSWER_ELEMENTS ({MAX_ANSWER_ELEMENTS}); LinkedIn answers at most 700"
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
        return str(error["message"])[:MAX_REFUSED_MESSAGE_CHARS]
    return f"refused at posting time with HTTP {element.get('status')}"


def schedule_from_answer(
    post_answer: Any,
    operation: str,
    callbacks: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    requested_at: str | None = None,
    *,
    countdown_seconds: float | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Verify a POST answer: refused elements get FAILED outcomes now, the rest are polled.

    ``idempotency_key``: as for :func:`verify_urns`; refused elements' callbacks keep
    their task ids too.
    """
    urns, refused = split_post_answer(post_answer)
    now = runtime().clock.now()
    # Checked in full before any outcome is sent, with a placeholder URN when none exist.
    request, countdown, key = _checked(
        {"task_urns": urns or ["urn:li:simpleJobPostingTask:none"], "operation": operation,
         "callbacks": callbacks, "context": context, "requested_at": requested_at},
        countdown_seconds, idempotency_key, now)
    ids = _send(request, countdown, key) if urns else [verification_id(key, 0)]
    if refused:
        _deliver_refused(request, ids[0], refused, now)
    return {
        "verification_id": ids[0],
        "verification_ids": ids,
        "task_urns": len(urns),
        "refused": len(refused),
    }


def _deliver_refused(request: VerificationRequest, own_id: str,
                     refused: list[tuple[int, dict[str, Any]]], now: float) -> None:
    """FAILED outcomes of elements refused at posting, recorded under ``own_id``: a second
    run finds them delivered."""
    fleet = runtime()
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
        outcomes.append((refused_outcome_key(own_id, index), outcome))
    deliver(app, fleet, [(key, o, outcome_callback(request.callbacks, o["status"]))
                      for key, o in outcomes],
            batch=request.callbacks.get(BATCH_CALLBACK))
    fleet.metrics.flush(fleet.redis, force=True)
