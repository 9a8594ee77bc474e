"""Re-sends verifications whose next round was lost, not merely late (see jobops.state.registry)."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready

from jobops.core.request import VERIFY_TASK
from jobops.state import keys
from jobops.state.registry import judge
from workers import app, loops
from workers.release import release_due
from workers.runtime import Fleet, runtime

log = logging.getLogger(__name__)

#: Overdue rounds one sweep looks at: each sweep reads the whole broker once, so the more
#: rounds it settles per read, the fewer reads a backlog costs.
OVERDUE_PER_SWEEP = 10_000
#: How late a held round is when the sweeper, not its release message, sends it.
RELEASE_LATE_SECONDS = 5.0
#: Ids named in one log line.
IDS_SHOWN = 5


def sweep_once(fleet: Fleet, now: float) -> int:
    """Re-send every lost round, if no other process is sweeping; returns how many.

    A lock in Redis lets one sweep at a time for the whole fleet. A sweep searches the
    broker only when some round is overdue, and then once for all of them: every registered
    queue's list and the unacknowledged messages.
    """
    interval = fleet.settings.sweep_interval_seconds
    if not fleet.redis.set(keys.SWEEP_LOCK, "1", nx=True, px=int(interval * 1000)):
        return 0
    # On any broker: a fleet moved off RabbitMQ still lets out what it held there.
    released = _release_late(fleet, now)
    overdue = fleet.pending.overdue(now, OVERDUE_PER_SWEEP)
    if not overdue:
        fleet.pending.note_unseen({})
        return released
    if fleet.broker is None:
        fleet.pending.postpone(overdue, now)
        log.warning("%d verifications are overdue, but the broker is not Redis and cannot "
                    "be searched for their messages: none is re-sent (%s)", len(overdue),
                    _shown(overdue))
        return released
    held = fleet.broker.find(set(overdue), fleet.pending.queues())
    verdict = judge(overdue, held, fleet.pending.unseen(), now)
    fleet.pending.note_unseen(verdict.unseen_since)
    if verdict.waiting:
        fleet.pending.postpone(verdict.waiting, now)
        log.info("%d overdue verifications are late, not lost: a message of each still "
                 "waits in the broker (a backlog, or a stopped worker) (%s)",
                 len(verdict.waiting), _shown(verdict.waiting))
    return _resend(fleet, fleet.pending.postpone(verdict.lost, now))


def _release_late(fleet: Fleet, now: float) -> int:
    """Send the held rounds that no release message let out (its sender died before
    publishing it, or its release failed): those due ``RELEASE_LATE_SECONDS`` ago."""
    released = release_due(fleet, now, due_by=now - RELEASE_LATE_SECONDS)
    if released:
        log.warning("released %d held verifications that no release message let out",
                    released)
    return released


def _resend(fleet: Fleet, lost: list[str]) -> int:
    sent = []
    gone = []
    for verification_id, kwargs in zip(lost, fleet.pending.arguments(lost), strict=True):
        if kwargs is None:
            gone.append(verification_id)
            continue
        # The same task id: if the lost message turns up after all, its round lease
        # tells the two copies apart.
        app.send_task(VERIFY_TASK, kwargs=kwargs, task_id=verification_id,
                      queue=fleet.settings.queue)
        log.warning("re-sent verification %s round %s: two sweeps found no message of it "
                    "in the broker", verification_id, kwargs.get("poll_round", 0))
        sent.append(verification_id)
    fleet.pending.drop(gone)
    if sent:
        log.warning("re-sent %d overdue verifications whose message was lost: %s",
                    len(sent), _shown(sent))
    return len(sent)


def _shown(ids: list[str]) -> str:
    more = f" +{len(ids) - IDS_SHOWN} more" if len(ids) > IDS_SHOWN else ""
    return ", ".join(ids[:IDS_SHOWN]) + more


class _Sweeper:
    """The sweeper's loop step: this worker's queues registered once, then a sweep."""

    def __init__(self, fleet: Fleet, queues: list[str]) -> None:
        self.fleet, self.queues, self.registered = fleet, queues, False

    def step(self) -> float:
        if not self.registered:
            # Before this worker holds anything: what it hands back waits in these.
            self.fleet.pending.add_queues(self.queues or [self.fleet.settings.queue])
            self.registered = True
        sweep_once(self.fleet, self.fleet.clock.now())
        return self.fleet.settings.sweep_interval_seconds


@worker_ready.connect
def start_sweeper(sender: Any = None, **_: Any) -> None:
    """Run the sweeper as a thread in each worker's main process."""
    fleet = runtime()
    interval = fleet.settings.sweep_interval_seconds
    loops.start("sweeper", _Sweeper(fleet, _consumed_queues(sender)).step, interval, log,
                first_wait_seconds=interval)


def _consumed_queues(consumer: Any) -> list[str]:
    """The queues this worker consumes (``-Q`` may name others than the settings')."""
    task_consumer = getattr(consumer, "task_consumer", None)
    return [queue.name for queue in getattr(task_consumer, "queues", None) or []]
