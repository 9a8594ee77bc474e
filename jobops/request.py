"""A verification request: the arguments of ``verify_job_operation``, checked.

``parse_request`` is used twice: at schedule time, strictly, so that bad input is
refused before anything is enqueued; and by the task itself, leniently, so that a
malformed URN sent by name becomes an INVALID outcome instead of poisoning its batch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobops.errors import InvalidRequest
from jobops.outcomes import OUTCOME_STATUSES, Operation, utc_iso
from jobops.urns import describe_invalid, is_task_urn

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
MAX_URNS_PER_REQUEST = 50_000
MAX_CONTEXT_BYTES = 16_384


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
    jobs: Mapping[str, list[str]] = field(default_factory=dict)

    def as_kwargs(self, task_urns: list[str] | tuple[str, ...] | None = None,
                  poll_round: int | None = None,
                  tally: Mapping[str, int] | None = None,
                  jobs: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
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
        jobs = self.jobs if jobs is None else jobs
        if jobs:
            kwargs["jobs"] = {job: list(urns) for job, urns in jobs.items()}
        return kwargs


def parse_operation(value: Any) -> Operation:
    try:
        return Operation(value)
    except ValueError:
        allowed = ", ".join(op.value for op in Operation)
        raise InvalidRequest(f"operation must be one of {allowed}; got {value!r:.60}") from None


def parse_timestamp(value: Any, default: float) -> float:
    """Epoch seconds from an ISO 8601 text with a timezone (or a timezone-aware datetime)."""
    if value is None:
        return default
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidRequest(
                f"requested_at must be ISO 8601 such as 2026-11-29T10:00:00+00:00; "
                f"got {value!r:.60}"
            ) from None
    if not isinstance(value, datetime):
        raise InvalidRequest(f"requested_at must be an ISO 8601 text; got {type(value).__name__}")
    if value.tzinfo is None:
        raise InvalidRequest(
            "requested_at needs a timezone, such as 2026-11-29T10:00:00+00:00"
        )
    return value.timestamp()


def parse_callbacks(value: Any) -> dict[str, Any]:
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
        parsed[key] = _check_callback(key, spec)
    return parsed


def _check_callback(key: str, spec: Any) -> Any:
    if isinstance(spec, str):
        if not _TASK_NAME.fullmatch(spec):
            raise InvalidRequest(f"callbacks[{key}] {spec!r:.60} is not a task name")
        return spec
    if isinstance(spec, Mapping):
        task = spec.get("task")
        if not isinstance(task, str) or not _TASK_NAME.fullmatch(task):
            raise InvalidRequest(
                f"callbacks[{key}] is a mapping without a valid 'task' name; pass a task name "
                "or a signature such as my_task.s().set(queue='pipeline')"
            )
        for part, kind in (("args", (list, tuple)), ("kwargs", Mapping), ("options", Mapping)):
            if spec.get(part) is not None and not isinstance(spec[part], kind):
                raise InvalidRequest(f"callbacks[{key}].{part} has the wrong type")
        _check_batch_limits(key, spec)
        _check_json(f"callbacks[{key}]", dict(spec))
        return dict(spec)
    raise InvalidRequest(
        f"callbacks[{key}] must be a task name or a signature; got {type(spec).__name__}"
    )


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
            f"context is {size} bytes as JSON, more than {MAX_CONTEXT_BYTES}; keep ids in "
            "it, not documents"
        )
    return dict(value)


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


def parse_request(kwargs: Mapping[str, Any], *, now: float, strict: bool) -> VerificationRequest:
    """Check every argument; raises InvalidRequest naming the first thing to fix."""
    poll_round = kwargs.get("poll_round", 0)
    if not isinstance(poll_round, int) or poll_round < 0:
        raise InvalidRequest("poll_round must be a non-negative integer")
    tally = kwargs.get("tally") or {}
    if not isinstance(tally, Mapping) or not all(
            isinstance(k, str) and isinstance(v, int) for k, v in tally.items()):
        raise InvalidRequest("tally must map outcome statuses to counts")
    jobs = kwargs.get("jobs") or {}
    if not isinstance(jobs, Mapping) or not all(
            isinstance(urns, list) for urns in jobs.values()):
        raise InvalidRequest("jobs must map externalJobPostingIds to task URN lists")
    return VerificationRequest(
        task_urns=parse_urns(kwargs.get("task_urns"), strict=strict),
        operation=parse_operation(kwargs.get("operation")),
        callbacks=parse_callbacks(kwargs.get("callbacks")),
        context=parse_context(kwargs.get("context")),
        requested_at=parse_timestamp(kwargs.get("requested_at"), default=now),
        poll_round=poll_round,
        tally=dict(tally),
        jobs={str(job): list(urns) for job, urns in jobs.items()},
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
