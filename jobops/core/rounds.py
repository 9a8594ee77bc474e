"""One run of a verification: poll what is pending, turn answers into outcomes, plan the next.

Plain Python with no Celery in it: the task converts arguments, calls ``run_once`` and
turns its ``RunResult`` into callbacks and a retry.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from jobops.core.cadence import Cadence, Jitter
from jobops.core.catalogue import expired_entry, gone_entry, invalid_urn_entry, unchecked_entry
from jobops.core.errors import LinkedInError
from jobops.core.outcomes import Status, build_outcome, count_statuses, is_terminal
from jobops.core.polling import Fetcher, PollReport, StatusCache, poll
from jobops.core.request import VerificationRequest
from jobops.core.urns import describe_invalid, is_task_urn


class RoundSettings(Protocol):
    """What a round needs to know of the settings."""

    @property
    def cadence(self) -> Cadence: ...

    @property
    def max_query_bytes(self) -> int: ...


@dataclass
class RunResult:
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    calls: int = 0
    error: LinkedInError | None = None
    next_check_seconds: float | None = None
    job_by_urn: dict[str, str] = field(default_factory=dict)  # task URN -> externalJobPostingId
    # Terminal answers this run's call brought for other verifications' URNs.
    companions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def tally(self, earlier: Mapping[str, int]) -> dict[str, int]:
        """Outcomes by status, this run's added to ``earlier`` rounds'."""
        return count_statuses(self.outcomes, earlier)

    def summary(self, operation: str, earlier: Mapping[str, int]) -> dict[str, Any]:
        return {
            "operation": operation,
            "outcomes": self.tally(earlier),
            "pending": len(self.pending),
            "calls": self.calls,
            "next_check_seconds": self.next_check_seconds,
            "error": str(self.error) if self.error else None,
        }



def _ask(fetcher: Fetcher, urns: list[str], settings: RoundSettings, now: float,
         cache: StatusCache | None, prefetched: Mapping[str, Any] | None,
         answers: Mapping[str, dict[str, Any]] | None) -> PollReport:
    """Poll ``urns``; with ``cache``, answers other runs learned recently need no call."""
    if answers is not None:
        known = {u: dict(answers[u]) for u in urns if u in answers}
    else:
        known = cache.cached(urns, now, prefetched) if cache is not None else {}
    report = poll(fetcher, [u for u in urns if u not in known], settings.max_query_bytes,
                  now, cache)
    # Statuses another run learned: terminal ones decide, fresh IN_PROGRESS ones wait.
    for urn, entry in known.items():
        if is_terminal(entry.get("status")):
            report.decided[urn] = entry
        else:
            report.pending.append(urn)
        if isinstance(entry.get("externalJobPostingId"), str):
            report.job_by_urn[urn] = entry["externalJobPostingId"]
    return report


def run_once(
    request: VerificationRequest,
    fetcher: Fetcher,
    settings: RoundSettings,
    now: float,
    jitter: Jitter = random.random,
    cache: StatusCache | None = None,
    prefetched: Mapping[str, Any] | None = None,
    answers: Mapping[str, dict[str, Any]] | None = None,
) -> RunResult:
    """Poll the request's URNs once; every URN ends up in ``outcomes`` or ``pending``.

    ``prefetched``: raw values of the URNs' shared status keys, if the caller read them.
    ``answers``: LinkedIn's entries by URN, learned by another run just now; used
    instead of the shared statuses.
    """
    result = RunResult()

    def outcome(urn: str, status: Status, **extra: Any) -> None:
        result.outcomes.append(
            build_outcome(
                task_urn=urn,
                status=status,
                operation=request.operation,
                context=dict(request.context),
                requested_at=request.requested_at,
                decided_at=now,
                **extra,
            )
        )

    askable = []
    for urn in request.task_urns:
        if is_task_urn(urn):
            askable.append(urn)
        else:
            outcome(urn, Status.INVALID, errors=[invalid_urn_entry(describe_invalid(urn))])

    cadence = settings.cadence
    deadline = cadence.deadline(request.requested_at)
    if askable:
        # Asked even at (or past) the deadline: a task that ended in the last poll
        # interval is reported as it ended, not EXPIRED.
        report = _ask(fetcher, askable, settings, now, cache, prefetched, answers)
        result.calls, result.error = report.calls, report.error
        result.job_by_urn = report.job_by_urn
        result.companions = report.companions
        for urn, entry in report.decided.items():
            outcome(urn, Status(entry["status"]), result=entry)
        for urn, reason in report.invalid.items():
            outcome(urn, **_refused_outcome(reason, now >= deadline, cadence))
        askable = report.pending
        if askable:
            wait = cadence.wait_after_round(report.error, request.poll_round, jitter)
            result.next_check_seconds = cadence.next_check(wait, now, deadline,
                                                           failing=report.error is not None)
    if askable and result.next_check_seconds is None:
        why = expired_entry(cadence.lifespan_days) if result.error is None \
            else unchecked_entry(cadence.lifespan_days, str(result.error))
        for urn in askable:
            outcome(urn, Status.EXPIRED, errors=[why])
    else:
        result.pending = askable
    return result


def _refused_outcome(reason: str, past_deadline: bool, cadence: Cadence) -> dict[str, Any]:
    """Outcome fields for a URN LinkedIn says it does not know."""
    if past_deadline:
        # Known until now, unknown once its id ran out: the id expired.
        return {"status": Status.EXPIRED,
                "errors": [gone_entry(cadence.lifespan_days, reason)]}
    return {"status": Status.INVALID, "error_message": reason,
            "errors": [invalid_urn_entry(reason)]}


def past_last_check(request: VerificationRequest, settings: RoundSettings, now: float) -> bool:
    """Whether no further check of ``request`` may be planned, even after a failure."""
    cadence = settings.cadence
    return now >= cadence.last_check_by(cadence.deadline(request.requested_at), failing=True)


def expire_unchecked(request: VerificationRequest, settings: RoundSettings, now: float,
                     reason: str, known: Mapping[str, dict[str, Any]] | None = None
                     ) -> RunResult:
    """The end of a verification whose runs kept failing until past its deadline: a URN
    whose final status is ``known`` (LinkedIn's last answers) ends as LinkedIn said; every
    other gets an outcome saying it could not be checked, and why."""
    result = RunResult()
    why = unchecked_entry(settings.cadence.lifespan_days, reason)
    for urn in request.task_urns:
        entry = (known or {}).get(urn)
        fields: dict[str, Any]
        if entry is not None and is_terminal(entry.get("status")):
            fields = {"status": Status(entry["status"]), "result": entry}
        elif is_task_urn(urn):
            fields = {"status": Status.EXPIRED, "errors": [why]}
        else:
            fields = {"status": Status.INVALID,
                      "errors": [invalid_urn_entry(describe_invalid(urn))]}
        result.outcomes.append(build_outcome(
            task_urn=urn, operation=request.operation, context=dict(request.context),
            requested_at=request.requested_at, decided_at=now, **fields))
    return result
