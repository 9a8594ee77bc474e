"""A verification request: the arguments of ``verify_job_operation``, checked."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobops.core.errors import InvalidRequest
from jobops.core.outcomes import OUTCOME_STATUSES, Operation, utc_iso
from jobops.core.urns import describe_invalid, is_task_urn

#: The task these are the arguments of, as a pipeline sends it by name.
VERIFY_TASK = "jobops.verify_job_operation"
#: The task a pipeline sends with a saved POST answer.
SCHEDULE_TASK = "jobops.schedule_verification"
#: The task that sends held rounds once due (RabbitMQ broker; see workers.release).
RELEASE_TASK = "jobops.release_held"
# DEFAULT receives every outcome whose status has no callback of its own.
DEFAULT_CALLBACK = "DEFAULT"
# JOB_COMPLETE receives one summary per job once all its locations have ended.
JOB_COMPLETE_CALLBACK = "JOB_COMPLETE"
# BATCH receives lists of outcomes (every status), besides any callback above.
BATCH_CALLBACK = "BATCH"
CALLBACK_KEYS = frozenset(OUTCOME_STATUSES) | {DEFAULT_CALLBACK, JOB_COMPLETE_CALLBACK,
                                               BATCH_CALLBACK}
# A BATCH signature may also say when a batch is full; the rest is Celery's signature.
BATCH_SIZE = "batch_size"
BATCH_SECONDS = "batch_seconds"
MAX_BATCH_SIZE = 10_000
MAX_BATCH_SECONDS = 3_600.0
_TASK_NAME = re.compile(r"[A-Za-z_][\w.:-]{0,199}")

#: Task URNs in one request (a bigger one is split into tasks of URNS_PER_TASK).
MAX_URNS_PER_REQUEST = 50_000
#: Characters of any value sent as a task URN (a well-formed one has at most 128): a
#: longer one rejects its message rather than being copied into an INVALID outcome.
MAX_URN_VALUE_CHARS = 1_000
#: Elements of one POST answer: LinkedIn answers at most 700 (100 jobs, 7 locations each).
MAX_ANSWER_ELEMENTS = 1_000
#: JSON bytes of the context, which travels in every message of the verification.
MAX_CONTEXT_BYTES = 16_384
#: Context bytes times task URNs: the context is copied into every outcome record, kept
#: for the task lifespan.
MAX_CONTEXT_COPIES_BYTES = 16 * 1024 * 1024
#: JSON bytes of all callbacks together (names, args, kwargs, options): they travel in
#: every message of the verification, and a callback's args in each callback sent.
MAX_CALLBACKS_BYTES = 8_192
#: JSON bytes of the outcomes of one BATCH batch: a batch is sealed when it would grow
#: past this, whatever its batch_size (one outcome bigger than this goes alone).
MAX_BATCH_BYTES = 1_048_576
#: Characters of an idempotency key (hashed into verification ids, never a key itself).
MAX_IDEMPOTENCY_KEY_CHARS = 200

# Signature keys jobops passes to Celery (``dict(my_task.s())`` has these).
_SIGNATURE_KEYS = frozenset({"task", "args", "kwargs", "options", "subtask_type",
                             "immutable", "chord_size", BATCH_SIZE, BATCH_SECONDS})
_QUEUE_NAME = re.compile(r"[\w.:@-]{1,200}")
# Names the Redis broker keeps its own state under, in the database jobops may share.
_RESERVED_NAME_PREFIXES = ("jobops:", "_kombu")
_RESERVED_NAMES = frozenset({"unacked", "unacked_index", "unacked_mutex"})
MAX_PRIORITY = 255


@dataclass(frozen=True)
class VerificationRequest:
    task_urns: tuple[str, ...]
    operation: Operation
    callbacks: Mapping[str, Any]
    context: Mapping[str, Any]
    requested_at: float
    poll_round: int = 0
    # Outcomes delivered by earlier rounds, by status: the final summary covers them all.
    tally: Mapping[str, int] = field(default_factory=dict)
    # Only with a JOB_COMPLETE callback: each job's task URNs, for jobs not yet complete.
    urns_by_job: Mapping[str, list[str]] = field(default_factory=dict)

    def as_kwargs(self, task_urns: list[str] | tuple[str, ...] | None = None,
                  poll_round: int | None = None,
                  tally: Mapping[str, int] | None = None,
                  urns_by_job: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
        """Task kwargs for this request, optionally narrowed to ``task_urns``."""
        kwargs = {
            "task_urns": list(self.task_urns if task_urns is None else task_urns),
            "operation": self.operation.value,
            "callbacks": dict(self.callbacks),
            "context": dict(self.context),
            "requested_at": utc_iso(self.requested_at),
            "poll_round": self.poll_round if poll_round is None else poll_round,
        }
        tally = self.tally if tally is None else tally
        if tally:
            kwargs["tally"] = dict(tally)
        urns_by_job = self.urns_by_job if urns_by_job is None else urns_by_job
        if urns_by_job:
            kwargs["jobs"] = {job: list(urns) for job, urns in urns_by_job.items()}
        return kwargs


def parse_operation(value: Any) -> Operation:
    try:
        return Operation(value)
    except ValueError:
        allowed = ", ".join(op.value for op in Operation)
        raise InvalidRequest(f"operation must be one of {allowed}; got {value!r:.60}") from None


def _iso_time(value: Any, what: str) -> float:
    """Epoch seconds of an ISO 8601 text with a timezone (or a timezone-aware datetime)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidRequest(
                f"{what} must be an ISO 8601 time such as 2026-11-29T10:00:00+00:00; "
                f"got {value!r:.60}"
            ) from None
    if not isinstance(value, datetime):
        raise InvalidRequest(
            f"{what} must be an ISO 8601 time such as 2026-11-29T10:00:00+00:00; "
            f"got {type(value).__name__}"
        )
    if value.tzinfo is None:
        raise InvalidRequest(f"{what} needs a timezone, such as 2026-11-29T10:00:00+00:00")
    return value.timestamp()


def parse_timestamp(value: Any, default: float) -> float:
    """Epoch seconds of ``requested_at``; ``default`` when it is not given."""
    return default if value is None else _iso_time(value, "requested_at")


def _number(value: Any) -> float | None:
    """A finite real number as a float, else None (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def parse_countdown(value: Any, what: str, max_seconds: float | None) -> float:
    """Seconds from 0 to ``max_seconds`` (half the broker's visibility timeout: a longer
    countdown runs the task twice)."""
    seconds = _number(value)
    if seconds is None:
        raise InvalidRequest(f"{what} must be a number of seconds; got {value!r:.40}")
    if seconds < 0:
        raise InvalidRequest(f"{what} must be at least 0; got {value!r:.40}")
    if max_seconds is not None and seconds > max_seconds:
        raise InvalidRequest(
            f"{what} must be at most {max_seconds:g} (half of "
            f"JOBOPS_VISIBILITY_TIMEOUT_SECONDS); got {value!r:.40}"
        )
    return seconds


def parse_idempotency_key(value: Any) -> str | None:
    """A caller's name for one request: the same key schedules it once."""
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise InvalidRequest(
            f"idempotency_key must be a text of 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters "
            f"(a message or batch id of yours); got {value!r:.40}"
        )
    return value


def parse_callbacks(value: Any, now: float, max_countdown_seconds: float | None
                    ) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidRequest(
            "callbacks must map an outcome status to a task name or a signature; "
            f"got {type(value).__name__}"
        )
    parsed: dict[str, Any] = {}
    for key, spec in value.items():
        if key not in CALLBACK_KEYS:
            raise InvalidRequest(
                f"callbacks key {key!r:.40} is not one of {', '.join(sorted(CALLBACK_KEYS))}"
            )
        parsed[key] = _check_callback(key, spec, now, max_countdown_seconds)
    size = _check_json("callbacks", parsed)
    if size > MAX_CALLBACKS_BYTES:
        raise InvalidRequest(
            f"callbacks are {size} bytes as JSON, more than MAX_CALLBACKS_BYTES "
            f"({MAX_CALLBACKS_BYTES}); pass ids in args, not documents"
        )
    return parsed


def _check_callback(key: str, spec: Any, now: float, max_countdown_seconds: float | None
                    ) -> Any:
    if isinstance(spec, str):
        if not _TASK_NAME.fullmatch(spec):
            raise InvalidRequest(f"callbacks[{key}] {spec!r:.60} is not a task name")
        return spec
    if not isinstance(spec, Mapping):
        raise InvalidRequest(
            f"callbacks[{key}] must be a task name or a signature; got {type(spec).__name__}"
        )
    _check_signature(key, spec)
    _check_batch_limits(key, spec)
    _check_options(f"callbacks[{key}].options", spec.get("options") or {}, now,
                   max_countdown_seconds)
    _check_json(f"callbacks[{key}]", dict(spec))
    return dict(spec)


def _check_signature(key: str, spec: Mapping[str, Any]) -> None:
    """One task's signature, as ``dict(my_task.s(...))`` gives it."""
    task = spec.get("task")
    if not isinstance(task, str) or not _TASK_NAME.fullmatch(task):
        raise InvalidRequest(
            f"callbacks[{key}] is a mapping without a valid 'task' name; pass a task name "
            "or a signature such as my_task.s().set(queue='pipeline')"
        )
    for part in spec:
        if part not in _SIGNATURE_KEYS:
            raise InvalidRequest(
                f"callbacks[{key}].{str(part):.40} is not part of a signature; use "
                f"{', '.join(sorted(_SIGNATURE_KEYS))}"
            )
    for part, kind in (("args", (list, tuple)), ("kwargs", Mapping), ("options", Mapping)):
        if spec.get(part) is not None and not isinstance(spec[part], kind):
            raise InvalidRequest(f"callbacks[{key}].{part} has the wrong type")
    if spec.get("subtask_type") is not None or spec.get("chord_size") is not None:
        raise InvalidRequest(
            f"callbacks[{key}].subtask_type must be null and chord_size absent: a callback "
            "is one task, not a chain, group or chord; start those from your callback task"
        )
    if not isinstance(spec.get("immutable", False), bool):
        raise InvalidRequest(f"callbacks[{key}].immutable must be true or false")


def _check_options(what: str, options: Mapping[str, Any], now: float,
                   max_countdown_seconds: float | None) -> None:
    """Refuse what Celery or kombu would raise on when the callback is sent, later."""
    for name, value in options.items():
        check = _OPTION_CHECKS.get(name)
        if check is None:
            raise InvalidRequest(
                f"{what}.{str(name):.40} is not supported; a callback may set "
                f"{', '.join(sorted(_OPTION_CHECKS))}"
            )
        check(f"{what}.{name}", value, now, max_countdown_seconds)


def _check_seconds(what: str, value: Any, now: float, max_seconds: float | None) -> None:
    seconds = _number(value)
    if seconds is None or seconds <= 0:
        raise InvalidRequest(f"{what} must be a number of seconds above 0; got {value!r:.40}")


def _check_countdown(what: str, value: Any, now: float, max_seconds: float | None) -> None:
    parse_countdown(value, what, max_seconds)


def _check_eta(what: str, value: Any, now: float, max_seconds: float | None) -> None:
    eta = _iso_time(value, what)
    if max_seconds is not None and eta - now > max_seconds:
        raise InvalidRequest(
            f"{what} must be at most {max_seconds:g} s from now (half of "
            f"JOBOPS_VISIBILITY_TIMEOUT_SECONDS); got {value!r:.40}"
        )


def _check_expires(what: str, value: Any, now: float, max_seconds: float | None) -> None:
    if isinstance(value, str):
        _iso_time(value, what)
        return
    seconds = _number(value)
    if seconds is None or seconds < 0:
        raise InvalidRequest(
            f"{what} must be seconds from sending (0 or more) or an ISO 8601 time with a "
            f"timezone; got {value!r:.40}"
        )


def _check_priority(what: str, value: Any, now: float, max_seconds: float | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PRIORITY:
        raise InvalidRequest(
            f"{what} must be a whole number from 0 to {MAX_PRIORITY}; got {value!r:.40}"
        )


def _check_headers(what: str, value: Any, now: float, max_seconds: float | None) -> None:
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"{what} must be a JSON object")


def _check_flag(what: str, value: Any, now: float, max_seconds: float | None) -> None:
    if not isinstance(value, bool):
        raise InvalidRequest(f"{what} must be true or false")


def _check_name(what: str, value: Any, now: float, max_seconds: float | None) -> None:
    """A queue, exchange or routing key name: on the Redis broker, a queue is a key."""
    if not isinstance(value, str) or not _QUEUE_NAME.fullmatch(value):
        raise InvalidRequest(
            f"{what} must be a queue name of 1 to 200 letters, digits and . : @ - _; "
            f"got {value!r:.40}"
        )
    if value.startswith(_RESERVED_NAME_PREFIXES):
        raise InvalidRequest(
            f"{what} may not start with {' or '.join(map(repr, _RESERVED_NAME_PREFIXES))}: "
            "those names are jobops' and the broker's own keys"
        )
    if value in _RESERVED_NAMES:
        raise InvalidRequest(f"{what} {value!r} is Celery's own (the broker's unacked "
                             "messages); pick another name")


# The options a callback may set, each with its check; any other is refused: it would
# change how jobops publishes (task_id, serializer, link…) or fail only at sending.
_OPTION_CHECKS: dict[str, Callable[[str, Any, float, float | None], None]] = {
    "queue": _check_name, "exchange": _check_name, "routing_key": _check_name,
    "time_limit": _check_seconds, "soft_time_limit": _check_seconds,
    "countdown": _check_countdown, "eta": _check_eta, "expires": _check_expires,
    "priority": _check_priority, "headers": _check_headers, "ignore_result": _check_flag,
}


def _check_batch_limits(key: str, spec: Mapping[str, Any]) -> None:
    given = [part for part in (BATCH_SIZE, BATCH_SECONDS) if part in spec]
    if given and key != BATCH_CALLBACK:
        raise InvalidRequest(
            f"callbacks[{key}].{given[0]} applies to BATCH callbacks only; remove it, or "
            "register the callback under BATCH to receive lists of outcomes"
        )
    size = spec.get(BATCH_SIZE)
    if size is not None and (isinstance(size, bool) or not isinstance(size, int)
                             or not 1 <= size <= MAX_BATCH_SIZE):
        raise InvalidRequest(
            f"callbacks[BATCH].{BATCH_SIZE} must be a whole number of outcomes from 1 to "
            f"{MAX_BATCH_SIZE}; got {size!r:.40}"
        )
    seconds = spec.get(BATCH_SECONDS)
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int | float)
                                or not 0 < seconds <= MAX_BATCH_SECONDS):
        raise InvalidRequest(
            f"callbacks[BATCH].{BATCH_SECONDS} must be a number of seconds above 0 and at "
            f"most {MAX_BATCH_SECONDS:g}; got {seconds!r:.40}"
        )


def _check_json(what: str, value: Any) -> int:
    try:
        return len(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise InvalidRequest(f"{what} must be JSON-serializable: {error}") from None


def parse_context(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"context must be a JSON object; got {type(value).__name__}")
    size = _check_json("context", dict(value))
    if size > MAX_CONTEXT_BYTES:
        raise InvalidRequest(
            f"context is {size} bytes as JSON, more than MAX_CONTEXT_BYTES "
            f"({MAX_CONTEXT_BYTES}); keep ids in it, not documents"
        )
    return dict(value)


def _check_context_copies(context: Mapping[str, Any], urns: int) -> None:
    copies = len(json.dumps(dict(context))) * urns
    if copies > MAX_CONTEXT_COPIES_BYTES:
        raise InvalidRequest(
            f"the context is copied into the outcome of each of {urns} task URNs: {copies} "
            f"bytes, more than MAX_CONTEXT_COPIES_BYTES ({MAX_CONTEXT_COPIES_BYTES}); keep "
            "ids in it, or split the request"
        )


def parse_urns(value: Any, *, strict: bool) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidRequest(f"task_urns must be a list of task URNs; got {type(value).__name__}")
    if not value:
        raise InvalidRequest("task_urns is empty: give at least one task URN")
    if len(value) > MAX_URNS_PER_REQUEST:
        raise InvalidRequest(
            f"{len(value)} task URNs in one request; at most {MAX_URNS_PER_REQUEST} — split "
            "the request"
        )
    longest = max(len(urn) if isinstance(urn, str) else len(str(urn)[:MAX_URN_VALUE_CHARS + 1])
                  for urn in value)
    if not strict and longest > MAX_URN_VALUE_CHARS:
        raise InvalidRequest(
            f"task_urns holds a value of more than MAX_URN_VALUE_CHARS ({MAX_URN_VALUE_CHARS}) "
            "characters; a task URN has at most 128"
        )
    if strict:
        bad = [describe_invalid(urn) for urn in value if not is_task_urn(urn)]
        if bad:
            shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise InvalidRequest(
                f"{len(bad)} of {len(value)} task URNs are malformed, nothing was scheduled: "
                f"{shown}"
            )
    # A URN listed twice is verified (and reported) once.
    return tuple(dict.fromkeys(str(urn) if not isinstance(urn, str) else urn for urn in value))


def _parse_tally(value: Any) -> dict[str, int]:
    tally = value or {}
    if not isinstance(tally, Mapping) or not all(
            k in OUTCOME_STATUSES and isinstance(v, int) and not isinstance(v, bool) and v >= 0
            for k, v in tally.items()):
        raise InvalidRequest("tally must map outcome statuses to counts")
    return dict(tally)


def _parse_jobs(value: Any) -> dict[str, list[str]]:
    """Jobs not yet complete, with their task URNs: jobops' own, so well-formed only."""
    jobs = value or {}
    if not isinstance(jobs, Mapping) or not all(
            isinstance(job, str) and isinstance(urns, list) and all(map(is_task_urn, urns))
            for job, urns in jobs.items()):
        raise InvalidRequest("jobs must map externalJobPostingIds to lists of task URNs")
    if sum(len(urns) for urns in jobs.values()) > MAX_URNS_PER_REQUEST:
        raise InvalidRequest(f"jobs lists more than {MAX_URNS_PER_REQUEST} task URNs")
    return {job: list(urns) for job, urns in jobs.items()}


def parse_request(kwargs: Mapping[str, Any], *, now: float, strict: bool,
                  max_countdown_seconds: float | None = None) -> VerificationRequest:
    """Check every argument; raises InvalidRequest naming the first thing to fix.

    Used twice: at schedule time, ``strict``, so that bad input is refused before anything
    is enqueued; and by the task itself, leniently, so that a malformed URN sent by name
    becomes an INVALID outcome instead of poisoning its batch. Everything else that could
    fail later — a callback option Celery or kombu would choke on when the callback is
    sent, a size over a cap — is refused by both alike: at schedule time nothing is
    enqueued, in the task the message is rejected (never retried).

    ``max_countdown_seconds``: the longest countdown a callback may ask for (half the
    broker's visibility timeout); None checks only that it is a number of seconds.
    """
    poll_round = kwargs.get("poll_round", 0)
    if isinstance(poll_round, bool) or not isinstance(poll_round, int) or poll_round < 0:
        raise InvalidRequest("poll_round must be a non-negative integer")
    task_urns = parse_urns(kwargs.get("task_urns"), strict=strict)
    context = parse_context(kwargs.get("context"))
    _check_context_copies(context, len(task_urns))
    return VerificationRequest(
        task_urns=task_urns,
        operation=parse_operation(kwargs.get("operation")),
        callbacks=parse_callbacks(kwargs.get("callbacks"), now, max_countdown_seconds),
        context=context,
        requested_at=parse_timestamp(kwargs.get("requested_at"), default=now),
        poll_round=poll_round,
        tally=_parse_tally(kwargs.get("tally")),
        urns_by_job=_parse_jobs(kwargs.get("jobs")),
    )


def describe(kwargs: Mapping[str, Any]) -> str:
    """A one-line, secret-free picture of a verification's arguments, for Flower."""
    urns = kwargs.get("task_urns") or []
    shown = ", ".join(str(u).rsplit(":", 1)[-1][:8] + "…" for u in urns[:3])
    more = f" +{len(urns) - 3} more" if len(urns) > 3 else ""
    context = json.dumps(kwargs.get("context") or {}, sort_keys=True)
    if len(context) > 120:
        context = context[:117] + "..."
    return (f"{kwargs.get('operation')} · {len(urns)} URNs ({shown}{more}) · "
            f"round {kwargs.get('poll_round', 0)} · context {context}")
