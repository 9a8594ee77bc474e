"""What outcomes mean for a job: its last known state, and a summary over its locations.

Pure functions; :mod:`jobops.state.records` keeps their inputs in Redis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jobops.core.outcomes import Operation, Status, count_statuses

ANY_LOCATION = "*"


def establishes_state(outcome: Mapping[str, Any]) -> bool:
    """True when the outcome itself says whether the job is live (not borrowed)."""
    return (outcome.get("task_urn") is not None and outcome.get("job_live") is not None
            and outcome.get("job_live_from") is None
            and outcome.get("external_job_posting_id") is not None)


def state_entry(outcome: Mapping[str, Any]) -> dict[str, Any]:
    return {key: outcome[key] for key in ("task_urn", "operation", "status", "job_live",
                                          "requested_at")}


def needs_state(outcome: Mapping[str, Any]) -> bool:
    """A FAILED UPDATE, RENEW or CLOSE leaves the job as earlier operations left it."""
    return (outcome["status"] == Status.FAILED and outcome["operation"] != Operation.CREATE
            and outcome["external_job_posting_id"] is not None and outcome["job_live"] is None)


def borrow_state(outcome: dict[str, Any], state: Mapping[str, Any]) -> None:
    """Fill ``job_live`` of a failed non-CREATE outcome from the job's last known state."""
    outcome["job_live"] = state["job_live"]
    outcome["job_live_from"] = dict(state)


def completed_jobs(jobs: Mapping[str, Iterable[str]], pending: set[str],
                   pending_unknown: bool) -> list[str]:
    """Jobs none of whose task URNs is pending; none while a pending URN's job is unknown."""
    if pending_unknown:
        return []
    return [job for job, urns in jobs.items() if not pending.intersection(urns)]


def job_summary(external_job_posting_id: str, operation: str, context: Any,
                outcomes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One object for a job over all its locations, for the JOB_COMPLETE callback."""
    locations = [{"location": o["location"], "status": o["status"], "task_urn": o["task_urn"],
                  "job_live": o["job_live"]} for o in outcomes]
    statuses = count_statuses(outcomes)
    not_ok = [entry for entry in locations if entry["status"] != Status.SUCCEEDED]
    return {
        "kind": "job_summary",
        "status": "JOB_COMPLETE",
        "external_job_posting_id": external_job_posting_id,
        "operation": operation,
        "task_urns": len(outcomes),
        "statuses": statuses,
        "all_succeeded": not not_ok,
        "not_succeeded": not_ok,
        "locations": locations,
        "context": context,
    }
