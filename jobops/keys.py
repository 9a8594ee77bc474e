"""Every Redis key jobops writes, under one prefix.

    jobops:outcome:<task URN>            JSON outcome, written once its callback was sent;
                                         TTL: the task lifespan plus one day
    jobops:outcome:refused:<id>:<index>  same, for an element LinkedIn refused at posting
                                         time (no task URN exists); <id> is the
                                         verification id returned by the scheduler

Celery's own keys (the broker queue, unacked messages) live beside these in the same
database; none of them starts with ``jobops:``.
"""

from __future__ import annotations

PREFIX = "jobops:"


def outcome_key(task_urn: str) -> str:
    return f"{PREFIX}outcome:{task_urn}"


def refused_outcome_key(verification_id: str, element_index: int) -> str:
    return f"{PREFIX}outcome:refused:{verification_id}:{element_index}"
