"""Rounds held in Redis on RabbitMQ, let out by one countdown message per second."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Any

from kombu import Producer

from jobops.core.request import RELEASE_TASK, VERIFY_TASK, describe
from jobops.state.keys import release_key
from workers import app
from workers.config import countdown_for_broker, on_rabbitmq
from workers.runtime import Fleet

log = logging.getLogger(__name__)

#: How long a release holds the rounds it took: if it dies before their messages are
#: confirmed, they are due again after this (and taken by the next release or sweep).
TAKE_SECONDS = 60.0
#: Rounds one release takes, publishes and confirms at a time.
TAKE_LIMIT = 1_000
#: Longest wait for RabbitMQ to confirm a thousand released messages: well within
#: TAKE_SECONDS, so no other release takes them while this one still waits.
CONFIRM_TIMEOUT_SECONDS = 30.0
#: How long a second's release marker outlives that second.
MARKER_EXTRA_SECONDS = 60
#: Seconds whose release message this process knows was sent (a fact about the fleet, so
#: true in a forked child too): a scheduler's thousand operations a second ask Redis once.
_SENT: set[int] = set()
_SENT_KEPT = 64


def release_second(due_at: float) -> int:
    """The second whose release message lets out a round due at ``due_at``: never early."""
    return math.ceil(due_at)


def ensure_release(fleet: Fleet, due_at: float) -> None:
    """Make sure one release message is on its way for the rounds due by ``due_at``'s
    second: the first scheduler of that second sends it, the rest find it sent.

    On RabbitMQ every countdown goes through Celery's delay exchanges, which cost the
    broker far more than a plain publish (each hop a topic exchange; measured in
    ``bench/brokers.py``). A second's worth of rounds shares one such message, and each
    round's own message is sent, without a countdown, when it is due.
    """
    second = release_second(due_at)
    if second in _SENT:
        return
    marker = release_key(second)
    countdown = countdown_for_broker(fleet.settings, max(second - fleet.clock.now(), 0.0))
    if fleet.redis.set(marker, "1", nx=True, ex=int(countdown) + MARKER_EXTRA_SECONDS):
        try:
            app.send_task(RELEASE_TASK, kwargs={"second": second},
                          queue=fleet.settings.queue, countdown=countdown,
                          task_id=f"jobops-release-{second}")
        except BaseException:
            # The next scheduler of this second tries again; the sweeper lets out
            # whatever no release message does.
            fleet.redis.delete(marker)
            raise
    if len(_SENT) >= _SENT_KEPT:
        _SENT.discard(min(_SENT))
    _SENT.add(second)


def release_due(fleet: Fleet, now: float, due_by: float | None = None) -> int:
    """Send the message of every held round due by ``due_by`` (default: ``now``); returns
    how many were sent.

    Taken a thousand at a time, each thousand published with its confirmations awaited
    together (one at a time, each waits for the quorum queue to write it), then moved to
    the pending set. One already settled by another run, or already run, is not sent.
    """
    sent = 0
    while True:
        # Each thousand is held for its own minute: a long backlog's last thousand is not
        # taken with a deadline already past.
        until = fleet.clock.now() + TAKE_SECONDS
        taken = fleet.pending.take_held(now if due_by is None else due_by, until,
                                        TAKE_LIMIT)
        found = list(zip(taken, fleet.pending.arguments(taken), strict=True))
        rounds = [(verification_id, kwargs) for verification_id, kwargs in found
                  if kwargs is not None]
        if rounds:
            _publish(fleet, rounds)
            sent += len(rounds)
        fleet.pending.released([verification_id for verification_id, _ in rounds], until,
                               fleet.clock.now())
        # Arguments gone (past the lifespan's TTL): nothing to send them with.
        fleet.pending.drop([verification_id for verification_id, kwargs in found
                            if kwargs is None])
        if len(taken) < TAKE_LIMIT:
            break
    return sent


def _publish(fleet: Fleet, rounds: list[tuple[str, dict[str, Any]]]) -> None:
    """Send each round's message; on RabbitMQ, return once all are confirmed. (Rounds
    are held only on RabbitMQ; a fleet moved to the Redis broker still lets out what was
    held before, with its plain publishes.)"""
    def send(producer: Producer) -> None:
        for verification_id, kwargs in rounds:
            app.send_task(VERIFY_TASK, kwargs=kwargs, task_id=verification_id,
                          queue=fleet.settings.queue, producer=producer,
                          kwargsrepr=describe(kwargs))

    if not on_rabbitmq(fleet.settings):
        with app.producer_or_acquire() as producer:
            send(producer)
        return
    # The app's own connections confirm each publish before the next (a quorum queue
    # writes it to disk first); here all are in flight and confirmed together.
    with app.connection_for_write(transport_options={"confirm_publish": False}) as connection:
        channel = connection.channel()
        try:
            channel.confirm_select()
            confirms = Confirms(channel)
            send(Producer(channel))
            confirms.wait(connection, CONFIRM_TIMEOUT_SECONDS)
        finally:
            channel.close()


class NotConfirmed(Exception):
    """RabbitMQ refused (nack) or did not confirm messages of a release in time."""


class Confirms:
    """What a channel in confirm mode published, and what RabbitMQ confirmed of it.

    Every publish is counted, not only the tasks': with task events on, Celery publishes a
    task-sent event on the same channel after each task.
    """

    def __init__(self, channel: Any) -> None:
        self.published = 0
        self._highest = 0  # acknowledged up to here, by "multiple" acks
        self._acked: set[int] = set()
        self._refused = 0
        publish = channel.basic_publish

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.published += 1
            return publish(*args, **kwargs)

        channel.basic_publish = counted
        channel.events["basic_ack"].add(self._ack)
        channel.events["basic_nack"].add(self._nack)

    def _ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self._highest = max(self._highest, delivery_tag)
        else:
            self._acked.add(delivery_tag)

    def _nack(self, delivery_tag: int, multiple: bool) -> None:
        self._refused += 1

    def unconfirmed(self) -> int:
        return sum(1 for tag in range(self._highest + 1, self.published + 1)
                   if tag not in self._acked)

    def wait(self, connection: Any, timeout_seconds: float) -> None:
        """Until every publish is confirmed; NotConfirmed on a refusal or past
        ``timeout_seconds`` in all."""
        deadline = time.monotonic() + timeout_seconds
        while self.unconfirmed() and not self._refused:
            left = deadline - time.monotonic()
            if left <= 0:
                raise NotConfirmed(f"{self.unconfirmed()} of {self.published} released "
                                   f"messages unconfirmed after {timeout_seconds:.0f} s")
            with contextlib.suppress(TimeoutError):
                connection.drain_events(timeout=min(left, 1.0))
        if self._refused:
            raise NotConfirmed(f"RabbitMQ refused {self._refused} released messages")
