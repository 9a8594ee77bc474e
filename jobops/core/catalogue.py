"""LinkedIn's failure messages, turned into codes a pipeline can act on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypedDict


class ErrorEntry(TypedDict):
    code: str
    field: str | None
    message: str
    resolution: str


@dataclass(frozen=True)
class _Row:
    code: str
    pattern: re.Pattern[str]
    field: str | None
    resolution: str


def _row(code: str, pattern: str, field: str | None, resolution: str) -> _Row:
    return _Row(code, re.compile(pattern, re.IGNORECASE | re.DOTALL), field, resolution)


# LinkedIn's messages are free text and change over time, so each row matches a stable
# fragment. Rows come from the seed's error table and LinkedIn's longer list (see the
# project README). A row's field may be "{1}": the first group of its pattern.
CATALOGUE: tuple[_Row, ...] = (
    _row(
        "DUPLICATE_CREATE",
        r"same partnerIdentifier already exists|duplicate (?:job posting )?creation request",
        "externalJobPostingId",
        "A job with this externalJobPostingId is already posted: send UPDATE (or RENEW) for "
        "it, or use a unique externalJobPostingId for a new job.",
    ),
    _row(
        "DESCRIPTION_TOO_SHORT",
        r"description length should be at least 100 characters",
        "/description",
        "Give the job a description of more than 100 characters and post it again.",
    ),
    _row(
        "RENEW_UNKNOWN_JOB",
        r"Operation type RENEW is not allowed for a non-existing job",
        "externalJobPostingId",
        "RENEW needs a posted job: check that the externalJobPostingId refers to an "
        "existing job posting (CREATE it first if it was never posted or has been closed).",
    ),
    _row(
        "UPDATE_UNKNOWN_JOB",
        r"Operation type UPDATE is not allowed for a non-existing job",
        "externalJobPostingId",
        "LinkedIn finds no job with this externalJobPostingId: UPDATE with the "
        "externalJobPostingId used by the original CREATE, or CREATE the job.",
    ),
    _row(
        "CLOSE_UNKNOWN_JOB",
        r"Operation type CLOSE is not allowed for a non-existing job"
        r"|Cannot close job which is already closed or does not exist",
        "externalJobPostingId",
        "Nothing to close: the job was never posted under this externalJobPostingId or is "
        "already closed.",
    ),
    _row(
        "FIELD_BLOCKED",
        r"This job is blocked as its (\w+) is marked invalid",
        "{1}",
        "LinkedIn blocked the job because of this field: correct it and post the job again.",
    ),
    _row(
        "INVALID_LOCATION",
        r"could not standardize your job'?s location|invalid location|missing location data",
        "/location",
        "Give a location LinkedIn can standardize (city, region, country) in location and "
        "alternateLocations, then post the job again.",
    ),
    _row(
        "NO_BUDGET",
        r"budget has ran out|budget has run out|no job budget available",
        None,
        "The job budget is spent: add budget or job slots to the contract, then post again.",
    ),
    _row(
        "LINKEDIN_INTERNAL_ERROR",
        r"dropped because of an unexpected error",
        None,
        "LinkedIn failed on its side: send the same operation again.",
    ),
    _row(
        "FIELD_REQUIRED",
        r"ERROR :: (/[\w/]+) :: field is required",
        "{1}",
        "Add the missing field to the job and post it again.",
    ),
)

_INVALID_FIELD = re.compile(r"Invalid Field:\s*(/[\w/]+)\s*;?")
_INVALID_FIELD_RESOLUTION = (
    "LinkedIn dropped the job because this field is invalid: correct it and post again."
)
_ELEMENT_ERROR = re.compile(r"ERROR :: (/[\w/]+) :: ([^\n]+)")


def _field(row: _Row, match: re.Match[str]) -> str | None:
    if row.field == "{1}":
        return match.group(1)
    return row.field


def parse_error_message(message: str | None) -> list[ErrorEntry]:
    """Every problem named in ``message``, most specific first; [] for no message.

    The raw message is always kept beside these entries (an outcome's ``error_message``),
    and a message no row matches becomes one ``UNKNOWN`` entry carrying the raw text.
    """
    if message is None or not message.strip():
        return []
    entries: list[ErrorEntry] = []
    for row in CATALOGUE:
        match = row.pattern.search(message)
        if match:
            entries.append(
                {
                    "code": row.code,
                    "field": _field(row, match),
                    "message": match.group(0),
                    "resolution": row.resolution,
                }
            )
    covered = {entry["field"] for entry in entries}
    for pattern in (_INVALID_FIELD, _ELEMENT_ERROR):
        for match in pattern.finditer(message):
            field = match.group(1)
            if field in covered:
                continue
            covered.add(field)
            entries.append(
                {
                    "code": "INVALID_FIELD",
                    "field": field,
                    "message": match.group(0).strip(),
                    "resolution": _INVALID_FIELD_RESOLUTION,
                }
            )
    if not entries:
        entries.append(
            {
                "code": "UNKNOWN",
                "field": None,
                "message": message,
                "resolution": "LinkedIn gave a reason jobops does not know: read the message, "
                "fix the job and post it again.",
            }
        )
    return entries


def invalid_urn_entry(reason: str) -> ErrorEntry:
    """The entry of an INVALID outcome: a URN LinkedIn does not accept or know."""
    return {
        "code": "INVALID_TASK_URN",
        "field": "ids",
        "message": reason,
        "resolution": "Use the task URN exactly as LinkedIn returned it in the answer to "
        "POST /v2/simpleJobPostings (urn:li:simpleJobPostingTask:…).",
    }


def expired_entry(lifespan_days: float) -> ErrorEntry:
    """The entry of an EXPIRED outcome: still IN_PROGRESS when the task id ran out."""
    return {
        "code": "STILL_IN_PROGRESS_AT_EXPIRY",
        "field": None,
        "message": f"still IN_PROGRESS {lifespan_days:g} days after the operation",
        "resolution": "LinkedIn never decided this task: check the job on LinkedIn and send "
        "the operation again if it is not live.",
    }


def unchecked_entry(lifespan_days: float, error: str) -> ErrorEntry:
    """The entry of an EXPIRED outcome whose last check at the deadline could not be made."""
    return {
        "code": "NOT_CHECKED_AT_EXPIRY",
        "field": None,
        "message": f"could not be checked when its task id ran out ({lifespan_days:g} days "
        f"after the operation): {error}",
        "resolution": "LinkedIn could not be asked at the end of the task's lifespan: check "
        "the job on LinkedIn and send the operation again if it is not live.",
    }


def gone_entry(lifespan_days: float, reason: str) -> ErrorEntry:
    """The entry of an EXPIRED outcome LinkedIn no longer knows once its id ran out."""
    entry = expired_entry(lifespan_days)
    entry["message"] = (f"still IN_PROGRESS when last seen; LinkedIn no longer knows the task "
                        f"{lifespan_days:g} days after the operation: {reason}")
    return entry
