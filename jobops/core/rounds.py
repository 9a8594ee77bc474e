"""One run of a verification: poll what is pending, turn answers into outcomes, plan the next.

Plain Python with no Celery in it: the task converts arguments, calls ``run_once`` and
turns its ``RunResult`` into callbacks and a retry.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jobops.core.cadence import Jitter, backoff_seconds, next_check_seconds, wait_after_error
from jobops.core.catalogue import expired_entry, gone_entry, invalid_urn_entry, unchecked_entry
from jobops.core.errors import LinkedInError
from jobops.core.outcomes import Status, build_outcome, is_terminal
from jobops.core.polling import Fetcher, PollReport, poll
from jobops.core.request import VerificationRequest
from jobops.core.urns import describe_invalid, is_task_urn
from jobops.state.status_cache import StatusShare
from settings import Settings


@dataclass
class RunResult:
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    calls: int = 0
    error: LinkedInError | None = None
    next_check_seconds: float | None = None
    jobs: dict[str, str] = field(default_factory=dict)  # task URN -> externalJobPostingId
    # Terminal answers this run's call brought for other verifications' URNs.
    companions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def tally(self, earlier: Mapping[str, int]) -> dict[str, int]:
        """Outcomes by status, this run's added to ``earlier`` rounds'."""
        counts = dict(earlier)
        for outcome in self.outcomes:
            counts[outcome["status"]] = counts.get(outcome["status"], 0) + 1
        return counts

    def summary(self, operation: str, earlier: Mapping[str, int]) -> dict[str, Any]:
        return {
            "operation": operation,
            "outcomes": self.tally(earlier),
            "pending": len(self.pending),
            "calls": self.calls,
            "next_check_seconds": self.next_check_seconds,
            "error": str(self.error) if self.error else None,
        }



def _ask(fetcher: Fetcher, urns: list[str], settings: Settings, now: float,
         share: StatusShare | None, prefetched: Mapping[str, Any] | None,
         answers: Mapping[str, dict[str, Any]] | None) -> PollReport:
    """Poll ``urns``; with ``share``, answers other runs learned recently need no call."""
    if answers is not None:
        known = {u: dict(answers[u]) for u in urns if u in answers}
    else:
        known = share.cached(urns, now, prefetched) if share is not None else {}
    report = poll(fetcher, [u for u in urns if u not in known], settings.max_query_bytes,
                  now, share)
    # Statuses another run learned: terminal ones decide, fresh IN_PROGRESS ones wait.
    for urn, entry in known.items():
        if is_terminal(entry.get("status")):
            report.decided[urn] = entry
        else:
            report.pending.append(urn)
        if isinstance(entry.get("externalJobPostingId"), str):
            report.jobs[urn] = entry["externalJobPostingId"]
    return report


def _wait_seconds(error: LinkedInError | None, poll_round: int, settings: Settings,
                  jitter: Jitter) -> float:
    base, cap = settings.poll_interval_seconds, settings.max_poll_interval_seconds
    if error is not None:
        return wait_after_error(error, poll_round, base, cap, jitter)
    return backoff_seconds(poll_round, base, cap, jitter)


def run_once(
    request: VerificationRequest,
    fetcher: Fetcher,
    settings: Settings,
    now: float,
    jitter: Jitter = random.random,
    share: StatusShare | None = None,
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

    deadline = request.requested_at + settings.task_lifespan_seconds
    if askable:
        # Asked even at (or past) the deadline: a task that ended in the last poll
        # interval is reported as it ended, not EXPIRED.
        report = _ask(fetcher, askable, settings, now, share, prefetched, answers)
        result.calls, result.error, result.jobs = report.calls, report.error, report.jobs
        result.companions = report.companions
        for urn, entry in report.decided.items():
            outcome(urn, Status(entry["status"]), result=entry)
        for urn, reason in report.invalid.items():
            outcome(urn, **_refused_outcome(reason, now >= deadline, settings))
        askable = report.pending
        if askable:
            wait = _wait_seconds(report.error, request.poll_round, settings, jitter)
            result.next_check_seconds = next_check_seconds(
                wait, now, _last_check_by(deadline, report.error is not None, settings))
    if askable and result.next_check_seconds is None:
        why = expired_entry(settings.task_lifespan_days) if result.error is None \
            else unchecked_entry(settings.task_lifespan_days, str(result.error))
        for urn in askable:
            outcome(urn, Status.EXPIRED, errors=[why])
    else:
        result.pending = askable
    return result


def _refused_outcome(reason: str, past_deadline: bool, settings: Settings) -> dict[str, Any]:
    """Outcome fields for a URN LinkedIn says it does not know."""
    if past_deadline:
        # Known until now, unknown once its id ran out: the id expired.
        return {"status": Status.EXPIRED,
                "errors": [gone_entry(settings.task_lifespan_days, reason)]}
    return {"status": Status.INVALID, "error_message": reason,
            "errors": [invalid_urn_entry(reason)]}


def _last_check_by(deadline: float, failing: bool, settings: Settings) -> float:
    """Until when another check may be planned: the deadline, where that check is the last
    one; a little past it while the check at the deadline keeps failing."""
    return deadline + settings.max_poll_interval_seconds if failing else deadline


def past_last_check(request: VerificationRequest, settings: Settings, now: float) -> bool:
    """Whether no further check of ``request`` may be planned, even after a failure."""
    deadline = request.requested_at + settings.task_lifespan_seconds
    return now >= _last_check_by(deadline, True, settings)


def expire_unchecked(request: VerificationRequest, settings: Settings, now: float,
                     reason: str, known: Mapping[str, dict[str, Any]] | None = None
                     ) -> RunResult:
    """The end of a verification whose runs kept failing until past its deadline: a URN
    whose final status is ``known`` (LinkedIn's last answers) ends as LinkedIn said; every
    other gets an outcome saying it could not be checked, and why."""
    result = RunResult()
    why = unchecked_entry(settings.task_lifespan_days, reason)
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
