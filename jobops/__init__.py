"""jobops: whether every job sent to LinkedIn's Job Posting API went live, and what to do
when it did not.

The front door for Python callers (a pipeline that sends tasks by name needs none of it)::

    import jobops

    summary = jobops.schedule_from_answer(answer, operation="CREATE",
                                          callbacks={"DEFAULT": "pipeline.job_outcome"})
    jobops.outcome("urn:li:simpleJobPostingTask:…")        # an Outcome, or None
    jobops.outcomes_for_job("job-123")                     # every recorded Outcome

Scheduling and lookups reach the fleet's Redis and broker (settings from the environment);
they are imported on first use, so ``import jobops`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, cast

from jobops.core.catalogue import ErrorEntry
from jobops.core.errors import ConfigurationError, InvalidRequest, JobopsError, LinkedInError
from jobops.core.outcomes import Operation, Outcome, Status
from jobops.core.request import SCHEDULE_TASK, VERIFY_TASK

if TYPE_CHECKING:
    from workers.scheduling import schedule_from_answer, split_post_answer, verify_urns

__all__ = [
    # scheduling
    "schedule_from_answer", "verify_urns", "split_post_answer", "VERIFY_TASK",
    "SCHEDULE_TASK",
    # lookups
    "outcome", "outcomes_for_job",
    # types
    "Outcome", "ErrorEntry", "Operation", "Status",
    # errors
    "JobopsError", "ConfigurationError", "InvalidRequest", "LinkedInError",
]

_SCHEDULING = {"schedule_from_answer", "verify_urns", "split_post_answer"}


def outcome(task_urn: str) -> Outcome | None:
    """The recorded outcome of ``task_urn``, or None while it is pending or unknown."""
    from workers.runtime import runtime

    return cast("Outcome | None", runtime().records.outcome(task_urn))


def outcomes_for_job(external_job_posting_id: str) -> list[Outcome]:
    """Every recorded outcome of a job (over its locations and operations), oldest first."""
    from workers.runtime import runtime

    return cast("list[Outcome]", runtime().records.for_job(external_job_posting_id))


def __getattr__(name: str) -> Any:
    if name in _SCHEDULING:
        return getattr(importlib.import_module("workers.scheduling"), name)
    raise AttributeError(f"module 'jobops' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
