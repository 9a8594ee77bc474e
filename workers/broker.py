"""The jobops app's Redis transport: kombu 5.7's, made to outlive its broker, to keep the
messages it cannot read, and to queue each callback once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from queue import Empty
from typing import Any

import kombu
import redis
from celery import bootsteps
from celery.app.amqp import AMQP as CeleryAMQP
from celery.signals import task_rejected, task_unknown
from celery.worker.state import active_requests
from kombu.transport import redis as kombu_redis
from kombu.utils.collections import HashedSeq
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from jobops.state import keys, lua
from jobops.state.dead_letters import DeadLetters

log = logging.getLogger(__name__)

#: Longest excerpt of a dead letter's bytes in its log line.
LOG_EXCERPT_BYTES = 200


_ENQUEUE_ONCE = lua.source("enqueue_once")

#: Errors that mean the broker is unreachable (kombu's list also has KeyError).
BROKER_DOWN = (redis.ConnectionError, redis.TimeoutError, OSError)


def _delivery_tag(payload: Any) -> str | None:
    try:
        tag = payload["properties"]["delivery_tag"]
    except (KeyError, TypeError, IndexError):
        return None
    return tag if isinstance(tag, str) else None


class QoS(kombu_redis.QoS):
    def restore_unacked(self, client: Any = None) -> None:
        try:
            super().restore_unacked(client)
        except self.channel.connection_errors as error:
            # Raising would only cut the channel's close short; the messages are safe
            # in the unacked hash either way.
            log.warning("broker unreachable (%s): %d unacknowledged messages stay in "
                        "Redis's unacked hash; this worker hands them back if it "
                        "reconnects, any worker once they were taken %.0f s ago (the "
                        "visibility timeout)", type(error).__name__, len(self.held_tags()),
                        self.visibility_timeout)

    def held_tags(self) -> list[str]:
        """Delivery tags of messages taken and neither acknowledged nor handed back."""
        delivered: dict[str, Any] = self._delivered or {}
        dirty: set[str] = self._dirty or set()
        return [tag for tag in delivered if tag not in dirty]

    def restore_held(self, running: set[str]) -> int:
        """Hand back every held message but those in ``running``; returns how many were
        still in the unacked hash (another worker's ``restore_visible`` may have been
        first; each is handed back once, under WATCH)."""
        restored = 0
        delivered: dict[str, Any] = self._delivered or {}
        with self.channel.conn_or_acquire() as client:
            for tag in self.held_tags():
                if tag in running:
                    continue
                if client.hexists(self.unacked_key, tag):
                    self.restore_by_tag(tag, client)
                    restored += 1
                delivered.pop(tag, None)
        return restored


class Channel(kombu_redis.Channel):
    QoS = QoS
    #: Task ids of messages queued at most once while their marker lives, and how long
    #: that is (transport options; see workers.config.celery_config).
    enqueue_once_prefixes: tuple[str, ...] = ()
    enqueue_once_seconds: float = 0.0
    from_transport_options = (  # type: ignore[assignment]  # kombu's is a literal tuple
        *kombu_redis.Channel.from_transport_options,
        "enqueue_once_prefixes", "enqueue_once_seconds")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Taken while the transport still knows them (see ``pool``).
        self._own_params = self._connparams()
        #: (Redis list, raw message) taken off a queue, then the connection failed before
        #: the message was recorded as unacknowledged: only this process has it.
        self.unrecorded: list[tuple[str, bytes]] = []

    def holds(self) -> bool:
        return bool(self.unrecorded or self.qos.held_tags())

    def hand_back(self, running: set[str]) -> int:
        """Put back on their queues the messages this channel took and neither
        acknowledged nor handed back, but those in ``running``; returns how many."""
        restored = self.qos.restore_held(running)
        with self.conn_or_acquire() as client:
            while self.unrecorded:
                key, raw = self.unrecorded[0]
                client.rpush(key, raw)  # consumed next, as kombu's own restore does
                self.unrecorded.pop(0)
                restored += 1
        return restored

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        """kombu's, but a callback is queued at most once while its marker lives.

        A publish whose connection died after Redis ran it and before its reply came is
        sent again (kombu's publish retry), and a run whose batch of callbacks failed that
        way sends them all again: copies with one task id. So a message whose task id marks
        it as a callback (``keys.ONCE_TASK_ID_PREFIXES``) is queued with a marker, both in
        one script, and not queued again while the marker lives (two visibility timeouts:
        longer than any path that sends a callback again).
        """
        task_id = (message.get("headers") or {}).get("id")
        if not (self.enqueue_once_seconds and isinstance(task_id, str)
                and task_id.startswith(tuple(self.enqueue_once_prefixes))
                and queue not in self._expires):
            super()._put(queue, message, **kwargs)
            return
        key = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))
        command = (_ENQUEUE_ONCE, 2, key, keys.enqueued_key(task_id), dumps(message),
                   int(self.enqueue_once_seconds * 1000))
        publish_batch = kwargs.pop("_publish_batch", None)
        if publish_batch is not None:
            publish_batch.add("eval", *command)
            return
        with self.conn_or_acquire() as client:
            if not client.eval(*command):
                log.info("%s was queued already; not queued again", task_id)

    @property
    def pool(self) -> redis.ConnectionPool:
        """kombu's, but built from the channel's own connection parameters once the
        transport has let go of its own.

        On a lost connection Celery first collects the kombu connection, which lets go of
        its connection info (``transport.client = None``), then closes it; closing the
        channel restores its unacknowledged messages through a new connection pool built
        from that info: ``AttributeError: 'NoneType' object has no attribute 'hostname'``,
        "Unrecoverable error", and the worker process exits. With its own parameters the
        channel can still restore and acknowledge.
        """
        pool: redis.ConnectionPool | None = self._pool
        if pool is None:
            if self.connection is None or self.connection.client is None:
                pool = redis.ConnectionPool(**self._own_params)
            else:
                pool = self._get_pool()
            self._pool = pool  # type: ignore[assignment]  # kombu declares it None
        return pool

    def _brpop_read(self, **options: Any) -> bool:
        # kombu 5.7's, but a message that cannot be read is set aside, not raised: bytes
        # that are not JSON raise JSONDecodeError in the event loop, JSON that is not a
        # kombu message KeyError or TypeError, and the worker would exit. They are logged
        # and kept as dead letters (jobops.state.dead_letters), and the worker goes on.
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP",
                                                        **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise Empty()
            key, item = dest__item
            key = bytes_to_str(key)
            dest = key.rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            try:
                payload = loads(bytes_to_str(item))
            except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
                self.dead_letter(dest, item, f"not JSON: {error}")
            else:
                self._deliver_or_set_aside(dest, item, payload, key)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]  # kombu declares it False
            self._flush_brpop_reauth()

    def _deliver_or_set_aside(self, queue: str, raw: bytes, payload: Any, key: str) -> None:
        try:
            self.connection._deliver(payload, queue)
        except BROKER_DOWN:
            # Redis popped it, then went before kombu recorded it as unacknowledged
            # (kombu takes a message in two steps): handed back after the reconnect.
            if _delivery_tag(payload) not in (self.qos._delivered or {}):
                self.unrecorded.append((key, raw))
                log.warning("broker unreachable just after a message was taken off queue "
                            "%s: this worker holds it in memory and hands it back once it "
                            "has reconnected", queue)
            raise
        except Exception as error:
            # Neither kombu nor Celery could take it (JSON that is not a message, a
            # message Celery's own refusal trips over). kombu counts a KeyError as a lost
            # connection: the worker would reconnect, get the message back, and fail on
            # it again for ever.
            self.dead_letter(queue, raw, f"not a message kombu and Celery can read: "
                                         f"{type(error).__name__}: {error}")
            tag = _delivery_tag(payload)
            if tag is not None:
                self.qos.ack(tag)

    def dead_letter(self, queue: str, raw: bytes, reason: str) -> None:
        excerpt = raw[:LOG_EXCERPT_BYTES]
        try:
            with self.conn_or_acquire() as client:
                kept = DeadLetters(client).add(queue, raw, reason)
        except BROKER_DOWN:
            log.error("dropped a message from queue %s that no worker can run (%s) and "
                      "could not keep it: the broker is unreachable; %d bytes: %r", queue,
                      reason, len(raw), excerpt)
            raise
        log.error("set aside a message from queue %s that no worker can run (%s): %d "
                  "bytes, %r; jobops dead-letters shows it (%d kept)", queue, reason,
                  len(raw), excerpt, kept)


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelChannel(Channel, kombu_redis.SentinelChannel):  # type: ignore[misc]
    """This module's channel, its connections to the primary Sentinel names."""

    from_transport_options = (*Channel.from_transport_options, *(  # type: ignore[assignment]
        option for option in kombu_redis.SentinelChannel.from_transport_options
        if option not in Channel.from_transport_options))


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel


_OURS = {kombu_redis.Transport: Transport, kombu_redis.SentinelTransport: SentinelTransport}


class Connection(kombu.Connection):
    """kombu's Connection, with this module's transport for a Redis broker."""

    def get_transport_cls(self) -> type:
        transport_cls = super().get_transport_cls()
        return _OURS.get(transport_cls, transport_cls)

    def Pool(  # noqa: N802 - kombu's name
            self, limit: int | None = None, **kwargs: Any) -> ConnectionPool:
        # kombu's pool hands out its own PooledConnection: the producers' connections,
        # in every pool process, would get kombu's transport.
        return ConnectionPool(self, limit=limit, **kwargs)

    def __eqhash__(self) -> Any:
        # kombu.pools keys its connection pools by this: never one of kombu's own.
        return HashedSeq("jobops", super().__eqhash__())


class PooledConnection(kombu.connection.PooledConnection, Connection):
    """A connection of the pool, with this module's transport."""


class ConnectionPool(kombu.connection.ConnectionPool):
    def new(self) -> PooledConnection:
        return PooledConnection(self, **dict(self.connection._info(resolve=False)))


class AMQP(CeleryAMQP):
    """How the app gets this transport (``Celery(amqp=...)``): a ``redis://`` or
    ``rediss://`` broker URL gets it; kombu's URL handling (TLS for ``rediss``) is
    unchanged."""

    Connection = Connection


class RestoreHeld(bootsteps.StartStopStep):
    """After a reconnect, hand back what the lost connection held (Channel.hand_back).

    kombu's restore at close cannot reach a Redis that is down, so the messages stay in its
    ``unacked`` hash, where any worker's ``restore_visible`` finds them only once the
    visibility timeout has passed (hours). This worker hands them back itself as soon as it
    has reconnected, except those its pool is still running, which it acknowledges when
    they end.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.earlier: list[Channel] = []

    def start(self, c: Any) -> None:
        running = {request.message.delivery_tag for request in tuple(active_requests)}
        for channel in list(self.earlier):
            try:
                restored = channel.hand_back(running)
            except BROKER_DOWN:
                continue  # the broker went again: on the next reconnect
            if restored:
                log.warning("handed back %d messages held when the broker connection was "
                            "lost", restored)
            if not channel.holds():
                self.earlier.remove(channel)
        consuming = getattr(c.task_consumer, "channel", None)
        if isinstance(consuming, Channel) and consuming not in self.earlier:
            self.earlier.append(consuming)


class KeepUndecodable(bootsteps.Step):
    """A message whose body Celery cannot decode is logged and acknowledged by Celery, and
    gone; it is kept as a dead letter first."""

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        drop = c.on_decode_error

        def keep_then_drop(message: Any, exc: Exception) -> None:
            channel = getattr(message, "channel", None)
            if isinstance(channel, Channel):
                with _reported():
                    channel.dead_letter(_queue_of(message), _raw(message),
                                        f"body not decodable: {exc}")
            drop(message, exc)

        # Read by the Tasks step when it starts the task consumer, after this.
        c.on_decode_error = keep_then_drop


def _raw(message: Any) -> bytes:
    return dumps(getattr(message, "_raw", None) or {"body": str(message.body)}).encode()


def _queue_of(message: Any) -> str:
    return str((message.delivery_info or {}).get("routing_key") or "?")


@contextmanager
def _reported() -> Iterator[None]:
    # Celery has refused the message already; a failure to keep it (logged by
    # dead_letter) must not stop the consumer.
    with suppress(Exception):
        yield


@task_rejected.connect
def _keep_rejected(sender: Any = None, message: Any = None, exc: Any = None, **_: Any) -> None:
    """Celery drops a message it cannot make a task of; keep it too."""
    channel = getattr(message, "channel", None)
    if isinstance(channel, Channel):
        with _reported():
            channel.dead_letter(_queue_of(message), _raw(message),
                                f"refused by Celery: {exc or 'not a task message'}")


@task_unknown.connect
def _keep_unknown(sender: Any = None, message: Any = None, exc: Any = None,
                  name: Any = None, **_: Any) -> None:
    channel = getattr(message, "channel", None)
    if isinstance(channel, Channel):
        with _reported():
            channel.dead_letter(_queue_of(message), _raw(message),
                                f"no such task here: {name}")
