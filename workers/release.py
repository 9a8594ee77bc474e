"""Rounds held in Redis on RabbitMQ, let out by one countdown message per second."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu import Producer

from jobops.core.request import RELEASE_TASK, VERIFY_TASK, describe
from jobops.state.keys import release_key
from workers import app
from workers.config import countdown_for_broker
from workers.runtime import Fleet

log = logging.getLogger(__name__)

#: How long a release holds the rounds it took: if it dies before their messages are
#: confirmed, they are due again after this (and taken by the next release or sweep).
TAKE_SECONDS = 60.0
#: Rounds one release takes, publishes and confirms at a time.
TAKE_LIMIT = 1_000
#: Longest wait for RabbitMQ to confirm a release's messages.
CONFIRM_TIMEOUT_SECONDS = 30.0
#: How long a second's release marker outlives that second.
MARKER_EXTRA_SECONDS = 60


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
    marker = release_key(second)
    countdown = countdown_for_broker(fleet.settings, max(second - fleet.clock.now(), 0.0))
    if not fleet.redis.set(marker, "1", nx=True,
                           ex=int(countdown) + MARKER_EXTRA_SECONDS):
        return
    try:
        app.send_task(RELEASE_TASK, kwargs={"second": second}, queue=fleet.settings.queue,
                      countdown=countdown, task_id=f"jobops-release-{second}")
    except BaseException:
        # The next scheduler of this second tries again; the sweeper lets out whatever
        # no release message does.
        fleet.redis.delete(marker)
        raise


def release_due(fleet: Fleet, now: float, due_by: float | None = None) -> int:
    """Send the message of every held round due by ``due_by`` (default: ``now``); returns
    how many were sent.

    Taken a thousand at a time, each thousand published with its confirmations awaited
    together (one at a time, each waits for the quorum queue to write it), then moved to
    the pending set. One already settled by another run, or already run, is not sent.
    """
    sent = 0
    while True:
        until = now + TAKE_SECONDS
        taken = fleet.pending.take_held(now if due_by is None else due_by, until,
                                        TAKE_LIMIT)
        found = list(zip(taken, fleet.pending.arguments(taken), strict=True))
        rounds = [(verification_id, kwargs) for verification_id, kwargs in found
                  if kwargs is not None]
        if rounds:
            _publish_confirmed(fleet, rounds)
            sent += len(rounds)
        fleet.pending.released([verification_id for verification_id, _ in rounds], until, now)
        # Arguments gone (past the lifespan's TTL): nothing to send them with.
        fleet.pending.drop([verification_id for verification_id, kwargs in found
                            if kwargs is None])
        if len(taken) < TAKE_LIMIT:
            break
    return sent


def _publish_confirmed(fleet: Fleet, rounds: list[tuple[str, dict[str, Any]]]) -> None:
    with _confirming_producer() as (producer, confirmed):
        for verification_id, kwargs in rounds:
            app.send_task(VERIFY_TASK, kwargs=kwargs, task_id=verification_id,
                          queue=fleet.settings.queue, producer=producer,
                          kwargsrepr=describe(kwargs))
        confirmed(len(rounds))


class NotConfirmed(Exception):
    """RabbitMQ refused (nack) or did not confirm messages of a release in time."""


@contextmanager
def _confirming_producer() -> Iterator[tuple[Producer, Any]]:
    """A producer on a channel in confirm mode, and a function that waits until the first
    ``n`` messages published on it are confirmed.

    The app's own connections confirm each publish before the next (a quorum queue writes
    it to disk first); here many are in flight and confirmed together.
    """
    with app.connection_for_write(transport_options={"confirm_publish": False}) as connection:
        channel = connection.channel()
        channel.confirm_select()
        acked: set[int] = set()
        highest = [0]
        refused: list[int] = []

        def on_ack(delivery_tag: int, multiple: bool) -> None:
            if multiple:
                highest[0] = max(highest[0], delivery_tag)
            else:
                acked.add(delivery_tag)

        def on_nack(delivery_tag: int, multiple: bool) -> None:
            refused.append(delivery_tag)

        channel.events["basic_ack"].add(on_ack)
        channel.events["basic_nack"].add(on_nack)

        def confirmed(count: int) -> None:
            def waiting() -> int:
                return sum(1 for tag in range(highest[0] + 1, count + 1) if tag not in acked)
            while waiting() and not refused:
                connection.drain_events(timeout=CONFIRM_TIMEOUT_SECONDS)
            if refused:
                raise NotConfirmed(f"RabbitMQ refused {len(refused)} released messages")

        try:
            yield Producer(channel), confirmed
        finally:
            channel.close()
