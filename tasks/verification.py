"""``jobops.verify_job_operation``: poll, deliver outcomes, retry with what is pending."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NoReturn

from celery import Task
from celery.exceptions import Reject, Retry
from celery.signals import task_received, worker_process_shutdown, worker_shutdown
from redis.client import Pipeline
from redis.exceptions import RedisError

from jobops.core.errors import InvalidRequest, LinkedInError
from jobops.core.jobs import completed_jobs, job_summary
from jobops.core.polling import StatusPage
from jobops.core.request import (
    BATCH_CALLBACK,
    JOB_COMPLETE_CALLBACK,
    MAX_URNS_PER_REQUEST,
    VERIFY_TASK,
    VerificationRequest,
    describe,
    parse_request,
)
from jobops.core.rounds import RunResult, expire_unchecked, past_last_check, run_once
from jobops.core.urns import is_task_urn
from jobops.state.keys import job_summary_key, outcome_key, run_key, status_key
from jobops.state.leases import LeaseLost
from jobops.state.stuck import error_text
from workers import app
from workers.callbacks import deliver, outcome_callback
from workers.companions import Companion, claim_companions
from workers.runtime import Fleet, current, runtime

log = logging.getLogger(__name__)


class StillPending(Exception):
    """Raised as the reason of a retry; Flower shows its text."""


def _deliver_job_summaries(fleet: Fleet, request: VerificationRequest, result: RunResult,
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


def _retry(task: Task, kwargs: dict[str, Any], countdown_seconds: float,
           reason: Exception, finished: tuple[int, str] | None = None) -> NoReturn:
    """Schedule the next run; if that cannot be published, hand the message back.

    Every wait goes out as a countdown of at most half the visibility timeout (a longer
    one would run twice); a longer wait, a lease's say, is taken in steps. Celery
    answers a retry it cannot publish with Reject(requeue=False), which drops the
    verification; requeueing the message being run keeps it (it is idempotent).
    ``finished``: the round this run holds (round, holder); the next round is published
    only while the lease is still this run's, then that round is marked done.
    """
    fleet = runtime()
    countdown_seconds = fleet.settings.cadence.countdown(countdown_seconds)
    if finished is not None:
        _still_held(fleet, task.request.id, finished[0])
        fleet.pending.expect(task.request.id, kwargs, fleet.clock.now() + countdown_seconds)
    try:
        scheduled = task.retry(kwargs=kwargs, countdown=countdown_seconds, exc=reason,
                               throw=False, kwargsrepr=describe(kwargs))
    except Reject as rejected:
        log.error("verification %s: next check could not be published (%s); requeued",
                  task.request.id, rejected.reason)
        raise Reject(rejected.reason, requeue=True) from None
    if finished is not None:
        try:
            fleet.leases.finish(task.request.id, *finished)
        except RedisError:
            # The next round is out: running this one again would only repeat its calls.
            log.warning("verification %s: round %d could not be marked done",
                        task.request.id, finished[0])
    raise scheduled


def _still_held(fleet: Fleet, verification_id: str, poll_round: int) -> set[str]:
    """Renew the run's leases; raise LeaseLost if its own round went to another copy.
    Returns the companions' run keys that did (they are left to that copy)."""
    lost = fleet.keeper.check()
    if run_key(verification_id, poll_round) in lost:
        raise LeaseLost(f"round {poll_round} of verification {verification_id} is held or "
                        "finished by another copy")
    return lost


class _Heartbeat:
    """The status client, with the run's lease renewed before each LinkedIn call: a run
    whose round went to another copy makes no further call."""

    def __init__(self, fleet: Fleet, verification_id: str, poll_round: int) -> None:
        self._rt, self._id, self._round = fleet, verification_id, poll_round

    def fetch(self, urns: list[str], now: float) -> StatusPage:
        _still_held(self._rt, self._id, self._round)
        return self._rt.client.fetch(urns, now)

    def request_refused(self, error: LinkedInError) -> float:
        return self._rt.client.request_refused(error)


@app.task(bind=True, name=VERIFY_TASK, max_retries=None)
def verify_job_operation(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Verify the task URNs of one CREATE/UPDATE/RENEW/CLOSE call."""
    try:
        return _verify(self, args, kwargs)
    except (Retry, Reject):
        raise
    except Exception as error:
        # A failed task is acknowledged and gone: Redis or the broker failing mid-run, or a
        # bug, retries instead (outcomes already delivered are skipped by their record),
        # visible in Flower with its exception — until the task lifespan's deadline.
        log.exception("verification %s failed; retrying", self.request.id)
        try:
            ended = _failed(self, kwargs, error)
        except Exception:
            # Ending it failed too (whatever broke the run likely broke this): retry.
            log.exception("verification %s could not be ended at its deadline; retrying",
                          self.request.id)
            ended = None
        if ended is not None:
            return ended
        _retry(self, kwargs, runtime().settings.cadence.wait_after_unexpected_error(
            self.request.retries), error)
    finally:
        _flush_metrics()


def _failed(task: Task, kwargs: dict[str, Any], error: Exception) -> dict[str, Any] | None:
    """Count a failed run for ``jobops stuck``; past the lifespan's deadline, end the
    verification with an outcome per URN saying why (None: retry)."""
    fleet = runtime()
    now = fleet.clock.now()
    fleet.metrics.add("jobops_verification_errors_total")
    try:
        fleet.stuck.failed(task.request.id, kwargs, error, now)
    except RedisError:
        log.warning("verification %s: its failure could not be recorded", task.request.id)
    try:
        request = parse_request(kwargs, now=now, strict=False)
    except InvalidRequest:
        return None
    if not past_last_check(request, fleet.settings, now):
        return None
    claim = fleet.leases.claim(task.request.id, request.poll_round)
    if not claim.granted:
        return None  # another copy holds or finished the round
    log.error("verification %s failed at the end of its task lifespan; its %d URNs are "
              "EXPIRED, not checked: %s", task.request.id, len(request.task_urns),
              error_text(error))
    result = expire_unchecked(request, fleet.settings, now, error_text(error),
                              _known_statuses(fleet, task.request.id, request, now))
    fleet.keeper.hold(task.request.id, request.poll_round, claim.holder)
    try:
        return _end_round(task, fleet, request, result, now, {}, [], claim.holder, last=True)
    except BaseException:
        fleet.leases.release(task.request.id, request.poll_round, claim.holder)
        raise
    finally:
        fleet.keeper.drop(task.request.id, request.poll_round)


def _known_statuses(fleet: Fleet, verification_id: str, request: VerificationRequest,
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


@task_received.connect
def _due_when_received(request: Any = None, **_: Any) -> None:
    """A verification a worker has taken in — sent by name from any pipeline, with a
    countdown it waits out in this worker — is due from now on: other runs' calls carry
    its URNs, and its own run then finds its answers shared."""
    if request is None or getattr(request, "name", None) != VERIFY_TASK:
        return
    fleet = runtime()
    kwargs = request.kwargs if isinstance(request.kwargs, dict) else {}
    urns = kwargs.get("task_urns")
    if fleet.status_cache is None or not isinstance(urns, list):
        return
    valid = [u for u in urns[:MAX_URNS_PER_REQUEST] if isinstance(u, str) and is_task_urn(u)]
    # Celery hands the ETA over parsed (an aware datetime): a countdown is kept, not
    # brought forward to the moment the message arrived.
    due_at = request.eta.timestamp() if isinstance(request.eta, datetime) else fleet.clock.now()
    try:
        fleet.status_cache.expect(valid, due_at, request.id)
    except RedisError:
        log.warning("verification %s could not be marked due; it runs uncoalesced",
                    request.id)


def _flush_metrics(force: bool = False) -> None:
    fleet = runtime()
    try:
        fleet.metrics.flush(fleet.redis, force=force)
    except RedisError:
        log.warning("metrics could not be written to Redis; they are lost for this run")


@worker_process_shutdown.connect
@worker_shutdown.connect
def _flush_metrics_on_exit(**_: Any) -> None:
    """Counts held back by JOBOPS_METRICS_FLUSH_SECONDS are written before a process ends."""
    if current() is not None:
        _flush_metrics(force=True)


def _verify(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    fleet = runtime()
    now = fleet.clock.now()
    try:
        if args:
            raise InvalidRequest("verify_job_operation takes keyword arguments only")
        request = parse_request(kwargs, now=now, strict=False,
                                max_countdown_seconds=fleet.settings.cadence.max_countdown_seconds)
    except InvalidRequest as error:
        # A poison message: retrying cannot fix it, so it is logged and dropped.
        log.error("verification %s rejected: %s", task.request.id, error)
        fleet.pending.forget(task.request.id)
        urns = kwargs.get("task_urns")
        if fleet.status_cache is not None and isinstance(urns, list) and urns \
                and all(isinstance(u, str) for u in urns):
            fleet.status_cache.settle(urns)  # nobody will look for them again
        return {"rejected": str(error)}

    fleet = runtime()
    claim = fleet.leases.claim(task.request.id, request.poll_round, _reads(fleet, request))
    if claim.done:
        if claim.settled_by is not None:
            # The usual end of a single-job verification: a run whose call answered for
            # its URNs delivered its outcomes.
            log.debug("verification %s round %d was settled by verification %s",
                      task.request.id, request.poll_round, claim.settled_by)
            return {"round": request.poll_round, "settled_by": claim.settled_by}
        log.info("verification %s round %d ran already; dropping this copy",
                 task.request.id, request.poll_round)
        return {"duplicate_of_round": request.poll_round}
    if not claim.granted:
        where = "held by a newer jobops release" if claim.unknown else "running elsewhere"
        _retry(task, kwargs, claim.retry_in_seconds,
               StillPending(f"round {request.poll_round} is {where}"))
    fleet.keeper.hold(task.request.id, request.poll_round, claim.holder)
    try:
        return _run_round(task, fleet, request, now, claim.values, claim.holder)
    except Retry:
        raise  # the next round is published and this one marked done
    except LeaseLost as lost:
        # This process stalled past its lease and a copy took the round over: this one
        # calls and publishes nothing more, and looks again a lease later in case that
        # copy gives the round back unfinished (a done round drops this message then).
        log.warning("verification %s: %s; this copy stands back", task.request.id, lost)
        _retry(task, kwargs, fleet.settings.run_lease_seconds,
               StillPending(f"round {request.poll_round} was taken over by another copy"))
    except BaseException:
        # Unfinished: give the round back so its retry or redelivery need not wait.
        fleet.leases.release(task.request.id, request.poll_round, claim.holder)
        raise
    finally:
        fleet.keeper.drop(task.request.id, request.poll_round)


def _reads(fleet: Fleet, request: VerificationRequest) -> list[str]:
    """Keys every run reads, fetched with its claim: outcome records, shared statuses."""
    reads = [outcome_key(urn) for urn in request.task_urns]
    if fleet.status_cache is not None:
        reads += [status_key(urn) for urn in request.task_urns if is_task_urn(urn)]
    return reads


def _run_round(task: Task, fleet: Fleet, request: VerificationRequest, now: float,
               prefetched: Mapping[str, Any], holder: str) -> dict[str, Any]:
    """Run the claimed round. A run whose call answered every URN another verification
    waits for (a companion: see ``jobops.state.status_cache`` and ``workers.companions``)
    also settles that verification, under its round's lease: its callbacks, records and end
    of round go with this run's own."""
    result = run_once(request, _Heartbeat(fleet, task.request.id, request.poll_round),
                      fleet.settings, now, cache=fleet.status_cache, prefetched=prefetched)
    others: list[Companion] = []
    try:
        others = claim_companions(fleet, task.request.id, result, now)
        return _end_round(task, fleet, request, result, now, prefetched, others, holder)
    except Retry:
        raise
    except BaseException:
        for other in others:
            fleet.leases.release(other.verification_id, other.request.poll_round, other.holder)
        raise
    finally:
        for other in others:
            fleet.keeper.drop(other.verification_id, other.request.poll_round)


def _end_round(task: Task, fleet: Fleet, request: VerificationRequest, result: RunResult,
               now: float, prefetched: Mapping[str, Any], others: list[Companion],
               holder: str, last: bool = False) -> dict[str, Any]:
    """Deliver and record the round, then retry or end; ``last``: the verification's end
    at its deadline after failing runs, delivered with whatever can still be read."""
    # Nothing is published for a round another copy took over (this one stalled).
    lost = _still_held(fleet, task.request.id, request.poll_round)
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
        log.exception("verification %s: job states could not be read", task.request.id)
    many = len(result.outcomes) + sum(len(other.result.outcomes) for other in others) > 1
    # Everything this run writes goes in one round trip at its end, after its callbacks
    # (one round trip too); ``after`` reads what that round trip answered (batches it
    # sealed).
    after: list[Callable[[list[Any]], object]] = []
    with fleet.redis.pipeline(transaction=False) as pipe:
        with app.producer_or_acquire() as producer, \
                producer.batch() if many else contextlib.nullcontext():
            jobs = _queue_round(fleet, task.request.id, request, result, now, prefetched,
                                pipe, after, producer)
            for other in others:
                _queue_round(fleet, other.verification_id, other.request, other.result, now,
                             other.records, pipe, after, producer)
        for other in others:
            fleet.leases.finish(other.verification_id, other.request.poll_round, other.holder,
                             pipe, settled_by=task.request.id)
            fleet.pending.forget(other.verification_id, pipe)
        summary = _finish_round(task, fleet, request, result, jobs, pipe, after, others, holder)
        _write_round(pipe, after)
    return summary


def _queue_round(fleet: Fleet, verification_id: str, request: VerificationRequest,
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
    return _deliver_job_summaries(fleet, request, result, pipe, producer)


def _write_round(pipe: Pipeline, after: list[Callable[[list[Any]], object]]) -> None:
    results = pipe.execute()
    for then in after:
        then(results)


def _finish_round(task: Task, fleet: Fleet, request: VerificationRequest, result: RunResult,
                  jobs: dict[str, list[str]], pipe: Pipeline,
                  after: list[Callable[[list[Any]], object]],
                  others: list[Companion], holder: str) -> dict[str, Any]:
    """Log the round; retry if URNs are pending (after executing ``pipe``), else queue
    the round's end into ``pipe``."""
    summary = result.summary(request.operation.value, request.tally)
    fleet.stuck.cleared(task.request.id, pipe)
    if others:
        fleet.metrics.add("jobops_settled_for_others_total", len(others))
        summary["settled_for_others"] = {
            "verifications": len(others),
            "outcomes": sum(len(other.result.outcomes) for other in others)}
    log.info("verification %s round %d: %s", task.request.id, request.poll_round, summary,
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
        _write_round(pipe, after)
        _retry(task,
               request.as_kwargs(result.pending, request.poll_round + 1,
                                 result.tally(request.tally), jobs),
               result.next_check_seconds,
               StillPending(f"{why}, next check in {result.next_check_seconds:.0f} s"),
               finished=(request.poll_round, holder))
    fleet.leases.finish(task.request.id, request.poll_round, holder, pipe)
    fleet.pending.forget(task.request.id, pipe)
    return summary
