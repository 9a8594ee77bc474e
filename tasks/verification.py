"""``jobops.verify_job_operation``: poll, deliver outcomes, retry with what is pending."""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import Any, NoReturn

from celery import Task
from celery.exceptions import Reject, Retry
from celery.signals import task_received, worker_process_shutdown, worker_shutdown
from redis.exceptions import RedisError

from jobops.core.errors import InvalidRequest
from jobops.core.request import (
    MAX_URNS_PER_REQUEST,
    VERIFY_TASK,
    describe,
    parse_request,
)
from jobops.core.rounds import expire_unchecked, past_last_check
from jobops.core.urns import is_task_urn
from jobops.state.leases import LeaseLost
from jobops.state.stuck import error_text
from workers import app
from workers.config import countdown_for_broker, on_rabbitmq
from workers.release import ensure_release
from workers.rounds import (
    StillPending,
    end_round,
    known_statuses,
    reads,
    run_round,
    still_held,
)
from workers.runtime import current, runtime

log = logging.getLogger(__name__)


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
    countdown_seconds = countdown_for_broker(
        fleet.settings, fleet.settings.cadence.countdown(countdown_seconds))
    # On RabbitMQ a round's next round waits in Redis for its second's release message, as
    # a first round does (see workers.release); a retry after a failed or contended run
    # goes as Celery's own, its wait growing with Celery's count of retries.
    held = finished is not None and countdown_seconds > 0 and on_rabbitmq(fleet.settings)
    due_at = fleet.clock.now() + countdown_seconds
    if finished is not None:
        still_held(fleet, task.request.id, finished[0])
        if not held:
            fleet.pending.expect(task.request.id, kwargs, due_at)
        elif not fleet.pending.hold_next(task.request.id, kwargs, due_at, finished[1]):
            log.warning("verification %s: round %d went to another run, or round %d ran "
                        "already; this run leaves them be", task.request.id, finished[0],
                        finished[0] + 1)
    if held:
        try:
            ensure_release(fleet, due_at)
        except Exception:
            # The round is held in Redis all the same: the sweeper lets it out.
            log.exception("verification %s: the release message of round %s could not be "
                          "sent; the sweeper sends the round", task.request.id,
                          kwargs.get("poll_round"))
        # Raised without publishing: Celery acknowledges the message and reports a retry.
        scheduled = Retry(exc=reason, when=countdown_seconds)
    else:
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
                              known_statuses(fleet, task.request.id, request, now))
    fleet.keeper.hold(task.request.id, request.poll_round, claim.holder)
    try:
        return end_round(functools.partial(_retry, task), fleet, task.request.id, request,
                         result, now, {}, [], claim.holder, last=True)
    except BaseException:
        fleet.leases.release(task.request.id, request.poll_round, claim.holder)
        raise
    finally:
        fleet.keeper.drop(task.request.id, request.poll_round)


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
    claim = fleet.leases.claim(task.request.id, request.poll_round, reads(fleet, request))
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
        return run_round(functools.partial(_retry, task), fleet, task.request.id, request,
                         now, claim.values, claim.holder)
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


