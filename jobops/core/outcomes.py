"""Outcomes: the one JSON object a callback receives for each task URN, and its statuses."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NotRequired, TypedDict

from jobops.core.catalogue import ErrorEntry, parse_error_message


class Operation(StrEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    RENEW = "RENEW"
    CLOSE = "CLOSE"


class Status(StrEnum):
    """An outcome's ``status`` is LinkedIn's terminal status (SUCCEEDED, FAILED, PROCESSED)
    or one of jobops' own: EXPIRED (still IN_PROGRESS when the task id's lifespan ran out)
    and INVALID (not a task URN LinkedIn knows). PROCESSED with a non-empty ``errors`` is
    the seed's "processed but failed payload validation"."""

    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    PROCESSED = "PROCESSED"
    EXPIRED = "EXPIRED"
    INVALID = "INVALID"


LINKEDIN_TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.PROCESSED})
OUTCOME_STATUSES = frozenset(Status) - {Status.IN_PROGRESS}


def is_terminal(status: Any) -> bool:
    """Whether LinkedIn's ``status`` field ends a task; False for anything not a known text
    (an unhashable value included), which is asked about again."""
    return isinstance(status, str) and status in LINKEDIN_TERMINAL

# What a terminal status says about whether the job is live on LinkedIn (seed's table).
# None: the status alone does not tell — a FAILED UPDATE leaves the job as the most recent
# CREATE left it; a failed RENEW or CLOSE does not say whether the job was live before.
_JOB_LIVE: dict[tuple[Status, Operation], bool | None] = {
    (Status.SUCCEEDED, Operation.CREATE): True,
    (Status.SUCCEEDED, Operation.UPDATE): True,
    (Status.SUCCEEDED, Operation.RENEW): True,
    (Status.SUCCEEDED, Operation.CLOSE): False,
    (Status.FAILED, Operation.CREATE): False,
}


def job_live(status: Status, operation: Operation) -> bool | None:
    """Whether the job is live after ``operation`` ended in ``status``; None if unknown."""
    return _JOB_LIVE.get((status, operation))


def utc_iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def _text(value: Any) -> str | None:
    """LinkedIn's text fields as text: a value of another type is kept, as JSON, rather
    than failing the run that received it."""
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


class Outcome(TypedDict):
    """The outcome of one task URN, as callbacks receive it and ``jobops outcome`` prints it:
    a plain dict, so that it crosses Celery as JSON unchanged."""

    task_urn: str | None
    status: str  # a Status value
    operation: str  # an Operation value
    external_job_posting_id: str | None
    job_posting: str | None
    location: str | None
    error_message: str | None
    errors: list[ErrorEntry]
    #: True: the job is live on LinkedIn; False: it is not; None: this outcome cannot say
    #: (a FAILED UPDATE, a DUPLICATE_CREATE) and no earlier outcome of the job said.
    job_live: bool | None
    context: Any
    requested_at: str
    decided_at: str
    #: Only where ``job_live`` was borrowed from the job's earlier operation.
    job_live_from: NotRequired[dict[str, Any]]
    #: Only for an element refused at posting time: its position in the POST answer.
    element_index: NotRequired[int]


def build_outcome(
    *,
    task_urn: str | None,
    status: Status,
    operation: Operation,
    context: Any,
    requested_at: float,
    decided_at: float,
    result: dict[str, Any] | None = None,
    error_message: str | None = None,
    errors: list[ErrorEntry] | None = None,
) -> dict[str, Any]:
    """The outcome for one URN (an :class:`Outcome`); ``result`` is LinkedIn's entry for it,
    when there is one."""
    result = result or {}
    message = _text(result.get("errorMessage")) if error_message is None else error_message
    entries = parse_error_message(message) if errors is None else errors
    live = job_live(status, operation)
    if any(entry["code"] == "DUPLICATE_CREATE" for entry in entries):
        # This CREATE was dropped, but an earlier one posted the job: its state is unknown here.
        live = None
    return {
        "task_urn": task_urn,
        "status": status.value,
        "operation": operation.value,
        "external_job_posting_id": _text(result.get("externalJobPostingId")),
        "job_posting": _text(result.get("jobPosting")),
        "location": _text(result.get("location")),
        "error_message": message,
        "errors": entries,
        "job_live": live,
        "context": context,
        "requested_at": utc_iso(requested_at),
        "decided_at": utc_iso(decided_at),
    }


def count_statuses(outcomes: Iterable[Mapping[str, Any]],
                   earlier: Mapping[str, int] | None = None) -> dict[str, int]:
    """Outcomes by status, added to ``earlier`` counts."""
    counts = dict(earlier or {})
    for outcome in outcomes:
        counts[outcome["status"]] = counts.get(outcome["status"], 0) + 1
    return counts


#: Columns of an outcome as people read it (the demo, ``jobops outcome`` and ``watch``).
OUTCOME_COLUMNS = ("status", "operation", "job", "location", "live", "detail")


def outcome_cells(outcome: Mapping[str, Any]) -> dict[str, str]:
    """An outcome's columns as text: the first error's code and fix stand for the rest."""
    live = {True: "live", False: "not live", None: "-"}[outcome["job_live"]]
    job = outcome["external_job_posting_id"] or f"(element {outcome.get('element_index')})"
    detail = outcome.get("job_posting") or ""
    errors = outcome["errors"]
    if errors:
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        detail = f"{errors[0]['code']}{more}: {errors[0]['resolution']}"
    return {"status": str(outcome["status"]), "operation": str(outcome["operation"]),
            "job": job, "location": outcome["location"] or "-", "live": live,
            "detail": detail}
