"""A verification round's work after its claim: the call, then every callback and write of
the round in one Redis round trip, and the next round or the end."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, Protocol

from celery.exceptions import Retry
from redis.client import Pipeline
from redis.exceptions import RedisError

from jobops.core.errors import LinkedInError
from jobops.core.jobs import completed_jobs, job_summary
from jobops.core.polling import StatusPage
from jobops.core.request import BATCH_CALLBACK, JOB_COMPLETE_CALLBACK, VerificationRequest
from jobops.core.rounds import RunResult, run_once
from jobops.core.urns import is_task_urn
from jobops.state.keys import job_summary_key, outcome_key, run_key, status_key
from jobops.state.leases import LeaseLost
from workers import app
from workers.callbacks import deliver, outcome_callback
from workers.companions import Companion, claim_companions
from workers.runtime import Fleet

log = logging.getLogger(__name__)


class Retrying(Protocol):
    """Publishes the verification's next round (the task's retry) and never returns."""

    def __call__(self, kwargs: dict[str, Any], countdown_seconds: float, reason: Exception,
                 finished: tuple[int, str] | None = None) -> NoReturn: ...


class StillPending(Exception):
    """Raised as the reason of a retry; Flower shows its text."""


def deliver_job_summaries(fleet: Fleet, request: VerificationRequest, result: RunResult,
                           pipe: Pipeline, producer: Any) -> dict[str, list[str]]:
    """Send JOB_COMPLETE for each job whose locations have all ended; returns the rest."""
    jobs = {job: list(urns) for job, urns in request.urns_by_job.items()}
    for urn, job in result.job_by_urn.items():
        if urn not in jobs.setdefault(job, []):
            jobs[job].append(urn)
    known = {urn for urns in jobs.values() for urn in urns}
    pending = set(result.pending)
    done = completed_jobs(jobs, pending, pending_unknown=not pending <= known)
    if not done:
        return jobs
    this_run = {o["task_urn"]: o for o in result.outcomes}
    spec = request.callbacks[JOB_COMPLETE_CALLBACK]
    items = []
    for job in done:
        urns = jobs.pop(job)
        earlier = [u for u in urns if u not in this_run]
        recorded = dict(zip(earlier, fleet.records.outcomes([outcome_key(u) for u in earlier]),
                            strict=True))
        outcomes = [this_run.get(u) or recorded.get(u) for u in urns]
        found = [o for o in outcomes if o is not None]
        summary = job_summary(job, request.operation.value, dict(request.context), found)
        items.append((job_summary_key(urns), summary, spec))
    deliver(app, fleet, items, pipe=pipe, producer=producer)
    return jobs

def still_held(fleet: Fleet, verification_id: str, poll_round: int) -> set[str]:
    """Renew the run's leases; raise LeaseLost if its own round went to another copy.
    Returns the companions' run keys that did (they are left to that copy)."""
    lost = fleet.keeper.check()
    if run_key(verification_id, poll_round) in lost:
        raise LeaseLost(f"round {poll_round} of verification {verification_id} is held or "
                        "finished by another copy")
    return lost


class Heartbeat:
    """The status client, with the run's lease renewed before each LinkedIn call: a run
    whose round went to another copy makes no further call."""

    def __init__(self, fleet: Fleet, verification_id: str, poll_round: int) -> None:
        self._rt, self._id, self._round = fleet, verification_id, poll_round

    def fetch(self, urns: list[str], now: float) -> StatusPage:
        still_held(self._rt, self._id, self._round)
        return self._rt.client.fetch(urns, now)

    def request_refused(self, error: LinkedInError) -> float:
        return self._rt.client.request_refused(error)

def known_statuses(fleet: Fleet, verification_id: str, request: VerificationRequest,
                    now: float) -> Mapping[str, dict[str, Any]]:
    """LinkedIn's last answers for the request's URNs, as far as they can be read: a URN
    that ended is reported as it ended, never EXPIRED."""
    if fleet.status_cache is None:
        return {}
    try:
        return fleet.status_cache.cached([u for u in request.task_urns if is_task_urn(u)], now)
    except Exception:  # noqa: BLE001 - what cannot be read is reported not checked
        log.warning("statuses of verification %s's URNs could not be read", verification_id)
        return {}

def reads(fleet: Fleet, request: VerificationRequest) -> list[str]:
    """Keys every run reads, fetched with its claim: outcome records, shared statuses."""
    reads = [outcome_key(urn) for urn in request.task_urns]
    if fleet.status_cache is not None:
        reads += [status_key(urn) for urn in request.task_urns if is_task_urn(urn)]
    return reads


def run_round(retry: Retrying, fleet: Fleet, verification_id: str, request: VerificationRequest,
              now: float, prefetched: Mapping[str, Any], holder: str) -> dict[str, Any]:
    """Run the claimed round. A run whose call answered every URN another verification
    waits for (a companion: see ``jobops.state.status_cache`` and ``workers.companions``)
    also settles that verification, under its round's lease: its callbacks, records and end
    of round go with this run's own."""
    result = run_once(request, Heartbeat(fleet, verification_id, request.poll_round),
                      fleet.settings, now, cache=fleet.status_cache, prefetched=prefetched)
    others: list[Companion] = []
    try:
        others = claim_companions(fleet, verification_id, result, now)
        return end_round(retry, fleet, verification_id, request, result, now, prefetched, others,
                         holder)
    except Retry:
        raise
    except BaseException:
        for other in others:
            fleet.leases.release(other.verification_id, other.request.poll_round, other.holder)
        raise
    finally:
        for other in others:
            fleet.keeper.drop(other.verification_id, other.request.poll_round)


def end_round(retry: Retrying, fleet: Fleet, verification_id: str, request: VerificationRequest,
              result: RunResult, now: float, prefetched: Mapping[str, Any],
              others: list[Companion], holder: str, last: bool = False) -> dict[str, Any]:
    """Deliver and record the round, then retry or end; ``last``: the verification's end
    at its deadline after failing runs, delivered with whatever can still be read."""
    # Nothing is published for a round another copy took over (this one stalled).
    lost = still_held(fleet, verification_id, request.poll_round)
    others = [other for other in others
              if run_key(other.verification_id, other.request.poll_round) not in lost]
    try:
        fleet.records.fill_job_state([*result.outcomes,
                                   *(o for other in others for o in other.result.outcomes)])
    except RedisError:
        if not last:
            raise
        # The verification's last word goes out without its job's earlier state rather
        # than never.
        log.exception("verification %s: job states could not be read", verification_id)
    many = len(result.outcomes) + sum(len(other.result.outcomes) for other in others) > 1
    # Everything this run writes goes in one round trip at its end, after its callbacks
    # (one round trip too); ``after`` reads what that round trip answered (batches it
    # sealed).
    after: list[Callable[[list[Any]], object]] = []
    with fleet.redis.pipeline(transaction=False) as pipe:
        with app.producer_or_acquire() as producer, \
                producer.batch() if many else contextlib.nullcontext():
            jobs = queue_round(fleet, verification_id, request, result, now, prefetched,
                                pipe, after, producer)
            for other in others:
                queue_round(fleet, other.verification_id, other.request, other.result, now,
                             other.records, pipe, after, producer)
        for other in others:
            fleet.leases.finish(other.verification_id, other.request.poll_round, other.holder,
                             pipe, settled_by=verification_id)
            fleet.pending.forget(other.verification_id, pipe)
        summary = finish_round(retry, fleet, verification_id, request, result, jobs, pipe,
                               after, others, holder)
        write_round(pipe, after)
    return summary


def queue_round(fleet: Fleet, verification_id: str, request: VerificationRequest,
                 result: RunResult, now: float, prefetched: Mapping[str, Any],
                 pipe: Pipeline, after: list[Callable[[list[Any]], object]], producer: Any
                 ) -> dict[str, list[str]]:
    """Queue a round's callbacks on ``producer`` and its writes into ``pipe``; returns
    the jobs still unfinished (for the next round)."""
    if fleet.status_cache is not None:
        fleet.status_cache.settle((o["task_urn"] for o in result.outcomes), pipe)
        if result.pending and result.next_check_seconds is not None:
            fleet.status_cache.expect(result.pending, now + result.next_check_seconds,
                            verification_id, pipe)
    deliver(app, fleet,
            [(outcome_key(o["task_urn"]), o, outcome_callback(request.callbacks, o["status"]))
             for o in result.outcomes], batch=request.callbacks.get(BATCH_CALLBACK),
            prefetched=prefetched, pipe=pipe, after=after, producer=producer)
    for outcome in result.outcomes:
        fleet.metrics.outcome(outcome["status"], outcome["operation"],
                           now - request.requested_at)
    if JOB_COMPLETE_CALLBACK not in request.callbacks:
        return {}
    return deliver_job_summaries(fleet, request, result, pipe, producer)


def write_round(pipe: Pipeline, after: list[Callable[[list[Any]], object]]) -> None:
    results = pipe.execute()
    for then in after:
        then(results)


def finish_round(retry: Retrying, fleet: Fleet, verification_id: str,
                 request: VerificationRequest, result: RunResult, jobs: dict[str, list[str]],
                 pipe: Pipeline, after: list[Callable[[list[Any]], object]],
                 others: list[Companion], holder: str) -> dict[str, Any]:
    """Log the round; retry if URNs are pending (after executing ``pipe``), else queue
    the round's end into ``pipe``."""
    summary = result.summary(request.operation.value, request.tally)
    fleet.stuck.cleared(verification_id, pipe)
    if others:
        fleet.metrics.add("jobops_settled_for_others_total", len(others))
        summary["settled_for_others"] = {
            "verifications": len(others),
            "outcomes": sum(len(other.result.outcomes) for other in others)}
    log.info("verification %s round %d: %s", verification_id, request.poll_round, summary,
             extra={"event": "verification_round", "operation": request.operation.value,
                    "round": request.poll_round, "urns": len(request.task_urns),
                    "decided": len(result.outcomes), "pending": len(result.pending),
                    "calls": result.calls,
                    "call_error": str(result.error) if result.error else None,
                    "settled_for_others": len(others)})
    if result.pending and result.next_check_seconds is not None:
        if result.error is not None:
            why = f"LinkedIn call failed ({result.error})"
        else:
            why = f"{len(result.pending)} of {len(request.task_urns)} URNs still IN_PROGRESS"
        write_round(pipe, after)
        retry(request.as_kwargs(result.pending, request.poll_round + 1,
                                 result.tally(request.tally), jobs),
               result.next_check_seconds,
               StillPending(f"{why}, next check in {result.next_check_seconds:.0f} s"),
               finished=(request.poll_round, holder))
    fleet.leases.finish(verification_id, request.poll_round, holder, pipe)
    fleet.pending.forget(verification_id, pipe)
    return summary
