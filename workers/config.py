"""Celery's configuration, derived from the settings: every delivery choice is here."""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

from jobops.state.keys import ONCE_TASK_ID_PREFIXES
from settings import Settings

#: Longest a worker waits for a TCP connection to the broker.
BROKER_CONNECT_TIMEOUT_SECONDS = 5.0
#: Longest between two looks for messages past the visibility timeout.
MAX_RESTORE_INTERVAL_SECONDS = 10.0


def restore_interval_seconds(settings: Settings) -> float:
    """How often each worker looks for messages past the visibility timeout: at most a
    tenth of it late."""
    return min(MAX_RESTORE_INTERVAL_SECONDS, settings.visibility_timeout_seconds / 10)


#: Broker URL schemes of RabbitMQ (AMQP 0-9-1).
AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")


def is_amqp(url: str) -> bool:
    return url.startswith(AMQP_SCHEMES)


def on_rabbitmq(settings: Settings) -> bool:
    return is_amqp(settings.effective_broker_url)


def countdown_for_broker(settings: Settings, seconds: float) -> float:
    """``seconds`` as a countdown the broker takes. RabbitMQ's delay exchanges count whole
    seconds, and Celery refuses to publish a countdown between 0 and 1 s to them (kombu's
    ``calculate_routing_key``: "countdown must be a positive number"), so such a wait
    becomes one second there."""
    if on_rabbitmq(settings) and 0 < seconds < 1:
        return 1.0
    return seconds


def jobops_queue(settings: Settings) -> Queue:
    """The queue jobops' tasks go to. On RabbitMQ a quorum queue behind a topic exchange:
    Celery then sends every countdown through RabbitMQ's delay exchanges (native delayed
    delivery), so a waiting verification is held by the broker, not in worker memory. A
    pipeline that sends by name declares the same queue (see the README)."""
    if on_rabbitmq(settings):
        return Queue(settings.queue, Exchange(settings.queue, type="topic"),
                     routing_key=settings.queue, queue_arguments={"x-queue-type": "quorum"})
    return Queue(settings.queue, routing_key=settings.queue)


def _rabbitmq_transport_options() -> dict[str, Any]:
    # Publisher confirms: a publish returns once RabbitMQ has the message. Without them a
    # quorum queue drops what is still in flight when the connection closes (20,000
    # countdown messages sent, then the connection closed: 14,432 arrived), and a retry
    # could be lost after the round it replaces was acknowledged.
    return {"confirm_publish": True}


def _redis_transport_options(settings: Settings) -> dict[str, Any]:
    return {
        # Redis redelivers a message not acknowledged within this time; every countdown
        # (first check, backoff) is validated to stay under half of it.
        "visibility_timeout": settings.visibility_timeout_seconds,
        # Each worker looks for messages past the visibility timeout (those a worker
        # that stopped or died while Redis was down left in the unacked hash) this
        # often, instead of kombu's 10 s x 10.
        "unacked_restore_interval": restore_interval_seconds(settings),
        "unacked_restore_throttle": 1,
        # An unreachable host must not hold a worker (or its shutdown) for the
        # system's TCP connect timeout, minutes.
        "socket_connect_timeout": BROKER_CONNECT_TIMEOUT_SECONDS,
        # A callback sent again (a publish retried after its reply was lost, a run
        # retried after its batch failed) is queued once (workers.broker). Every path
        # that sends one again does so within two visibility timeouts.
        "enqueue_once_prefixes": ONCE_TASK_ID_PREFIXES,
        "enqueue_once_seconds": settings.visibility_timeout_seconds * 2,
        # Read only by the Sentinel transport (sentinel:// broker URLs).
        "master_name": settings.redis_master_name,
    }


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery's configuration for ``settings``."""
    return {
        "broker_url": settings.effective_broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_connection_retry": True,
        # Celery's default gives up after 100 attempts (about 50 minutes) and the worker
        # exits; a Redis down for longer must not end the fleet.
        "broker_connection_max_retries": None,
        # A running task keeps its pool process: its acknowledgement goes out once the
        # broker is back (workers.broker), and a verification is idempotent anyway.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "broker_transport_options": _rabbitmq_transport_options() if on_rabbitmq(settings)
        else _redis_transport_options(settings),
        # A worker consumes only the jobops queue. Any other task this app sends — a
        # callback, the next step of a user's chain — goes to JOBOPS_CALLBACK_QUEUE, never
        # to a worker that cannot run it.
        "task_queues": (jobops_queue(settings),),
        "task_default_queue": settings.callback_queue,
        "task_routes": {"jobops.*": {"queue": settings.queue, "routing_key": settings.queue}},
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        # At-least-once: acknowledge after the run, hand the message back if the process dies.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Countdown tasks sit in worker memory until due; cap them per worker.
        "worker_eta_task_limit": settings.eta_task_limit,
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": settings.task_events,
        "enable_utc": True,
        "timezone": "UTC",
    }
