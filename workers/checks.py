"""What a worker checks before it takes work: credentials to call LinkedIn with, and a Redis
that never drops jobops' state to make room."""

from __future__ import annotations

import logging
from typing import Any

import amqp.exceptions
import kombu
import kombu.exceptions
import redis
from celery.signals import celeryd_after_setup
from kombu import Exchange, Queue

from jobops.state.connect import connect, is_redis
from settings import Settings, get_settings
from settings.urls import masked
from workers import app
from workers.config import on_rabbitmq

log = logging.getLogger(__name__)

#: The one maxmemory-policy under which Redis never deletes a key to make room.
SAFE_POLICY = "noeviction"
CHECK_TIMEOUT_SECONDS = 5.0


class Refusal(Exception):
    """Raised when the worker must not start; the message says what to fix."""


def redis_urls(settings: Settings) -> list[str]:
    """Every Redis the worker keeps state or messages in."""
    urls = [settings.redis_url]
    broker = settings.effective_broker_url
    if broker != settings.redis_url and is_redis(broker):
        urls.append(broker)
    return urls


def check_credentials(settings: Settings) -> None:
    if not settings.linkedin_client_id or not settings.linkedin_client_secret.get_secret_value():
        raise Refusal("LINKEDIN_CLIENT_ID and LINKEDIN_CLIENT_SECRET must both be set: without "
                      "them no access token can be had and every verification would wait in "
                      "vain. Set them to your LinkedIn application's client credentials.")


def check_eviction(url: str, allow_eviction: bool) -> None:
    """Refuse (or warn, if allowed) when the Redis at ``url`` may evict keys.

    jobops keeps TTLs on live state (the token, leases, pending verifications, outcome
    records), so a ``volatile-*`` policy may evict it; an ``allkeys-*`` one may evict
    queued tasks too. Either loses verifications without a trace, so the worker refuses to
    start unless JOBOPS_ALLOW_EVICTION says otherwise.
    """
    shown = masked(url)
    try:
        with connect(url, get_settings().redis_master_name,
                     socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
                     socket_timeout=CHECK_TIMEOUT_SECONDS) as store:
            policy = store.config_get("maxmemory-policy").get("maxmemory-policy")
    except redis.RedisError as error:
        # Managed services often refuse CONFIG GET; an unreachable Redis is the broker
        # connection's to report. Neither proves a risk, so neither stops the worker.
        log.warning("could not read maxmemory-policy of the Redis at %s (%s): make sure it "
                    "is %s, or Redis may delete jobops' state when memory runs short",
                    shown, type(error).__name__, SAFE_POLICY)
        return
    if policy in (SAFE_POLICY, None):
        return
    problem = (f"the Redis at {shown} has maxmemory-policy {policy}: when memory runs short "
               "it deletes keys, and with them tokens, leases, pending verifications, outcome "
               "records or queued tasks, without a trace. Set maxmemory-policy "
               f"{SAFE_POLICY} (redis.conf, CONFIG SET, or your provider's parameter group)")
    if not allow_eviction:
        raise Refusal(f"{problem}, or set JOBOPS_ALLOW_EVICTION=1 to start anyway.")
    log.warning("%s. Starting anyway: JOBOPS_ALLOW_EVICTION is set.", problem)


def check_callback_queue(settings: Settings) -> None:
    """On RabbitMQ, callbacks are published without declaring their queue (it is the
    pipeline's, maybe with arguments of its own), and RabbitMQ drops a message for a queue
    that does not exist: make sure JOBOPS_CALLBACK_QUEUE does."""
    if not on_rabbitmq(settings):
        return
    name = settings.callback_queue
    shown = masked(settings.effective_broker_url)
    try:
        with kombu.Connection(settings.effective_broker_url,
                              connect_timeout=CHECK_TIMEOUT_SECONDS) as connection:
            try:
                connection.default_channel.queue_declare(name, passive=True)
                return
            except amqp.exceptions.NotFound:
                pass
            # The 404 closed that channel.
            Queue(name, Exchange(name), routing_key=name)(connection.channel()).declare()
    except (OSError, amqp.exceptions.AMQPError, kombu.exceptions.KombuError) as error:
        log.warning("could not check that JOBOPS_CALLBACK_QUEUE %r exists on %s (%s): "
                    "callbacks for a queue RabbitMQ does not have are dropped", name, shown,
                    type(error).__name__)
        return
    log.warning("JOBOPS_CALLBACK_QUEUE %r did not exist on %s: declared it as a classic "
                "queue, as Celery does for a queue it does not know. Declare it before "
                "starting jobops to give it arguments of your own (quorum, a length limit).",
                name, shown)


def check_before_start(settings: Settings) -> None:
    check_credentials(settings)
    for url in redis_urls(settings):
        check_eviction(url, settings.allow_eviction)
    check_callback_queue(settings)


@celeryd_after_setup.connect
def _refuse_or_start(instance: Any, **_: Any) -> None:
    if instance.app is not app:
        return
    try:
        check_before_start(get_settings())
    except Refusal as refusal:
        log.critical("jobops worker not started: %s", refusal)
        # Not an Exception: Celery's signal dispatch logs those and carries on.
        raise SystemExit(1) from None
