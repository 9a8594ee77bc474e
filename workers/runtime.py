"""Per-process resources: one HTTP session, one Redis pool, one token cache.

Created lazily and keyed by process id, so a prefork child never reuses the sockets it
inherited from its parent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import redis
import requests

from jobops.core.request import VERIFY_TASK
from jobops.linkedin.oauth import request_token
from jobops.linkedin.status import StatusClient
from jobops.state.batches import Batches
from jobops.state.clock import FleetClock
from jobops.state.connect import connect, is_redis
from jobops.state.leases import LeaseKeeper, RunLeases
from jobops.state.limits import Limiter
from jobops.state.metrics import Metrics
from jobops.state.queued import BrokerMessages
from jobops.state.records import Records
from jobops.state.registry import PendingRegistry
from jobops.state.status_cache import RedisStatusCache, Upcoming
from jobops.state.stuck import StuckVerifications
from jobops.state.tokens import SharedTokenCache
from settings import Settings, get_settings
from workers.config import celery_config


@dataclass
class Fleet:
    settings: Settings
    session: requests.Session
    redis: redis.Redis
    tokens: SharedTokenCache
    limiter: Limiter
    client: StatusClient
    records: Records
    leases: RunLeases
    pending: PendingRegistry
    metrics: Metrics
    status_cache: RedisStatusCache | None
    batches: Batches
    stuck: StuckVerifications
    clock: FleetClock
    keeper: LeaseKeeper
    # None when the broker is not Redis: its messages cannot be searched.
    broker: BrokerMessages | None


def build_limiter(settings: Settings, store: redis.Redis,
                  metrics: Metrics | None = None) -> Limiter:
    def waited(seconds: float) -> None:
        if metrics is not None:
            metrics.add("jobops_permit_waits_total")
            metrics.add("jobops_permit_wait_seconds_total", seconds)

    return Limiter(
        store,
        calls_per_second=settings.calls_per_second,
        daily_limit=settings.daily_call_limit,
        reserve=settings.quota_reserve,
        max_wait_seconds=settings.permit_max_wait_seconds,
        allow_clock_override=settings.allow_clock_override,
        on_wait=waited,
        first_pause_seconds=settings.pause_first_seconds,
        max_pause_seconds=settings.pause_max_seconds,
        # Long enough for the probe's token request and its call, each within the timeout.
        probe_hold_seconds=settings.http_timeout_seconds * 2 + 1,
        on_trip=metrics.pause if metrics is not None else lambda reason: None,
    )


def build_runtime(settings: Settings) -> Fleet:
    session = requests.Session()
    store = connect(settings.redis_url, settings.redis_master_name)
    broker = _broker_messages(settings, store)
    fetch = partial(
        request_token,
        session,
        settings.linkedin_token_url,
        settings.linkedin_client_id,
        settings.linkedin_client_secret.get_secret_value(),
        settings.http_timeout_seconds,
    )
    metrics = Metrics(settings.metrics_flush_seconds, store=store)
    tokens = SharedTokenCache(store, fetch, settings.token_refresh_margin_seconds,
                              settings.token_lock_seconds,
                              on_refresh=lambda: metrics.add("jobops_token_refreshes_total"))
    limiter = build_limiter(settings, store, metrics)
    client = StatusClient(session, settings.linkedin_api_url, tokens, limiter,
                          settings.http_timeout_seconds, metrics)
    records = Records(store, ttl_seconds=int(settings.task_lifespan_seconds + 86_400))
    # An outcome's batch marker lives as long as its record, which it guards in between.
    batches = Batches(store, settings.batch_size, settings.batch_seconds,
                      ttl_seconds=records.ttl_seconds)
    leases = RunLeases(store, settings.run_lease_seconds,
                       done_ttl_seconds=int(settings.visibility_timeout_seconds * 2))
    # Overdue only once the broker's own redelivery has had its chance.
    pending = PendingRegistry(store, grace_seconds=settings.visibility_timeout_seconds * 1.5,
                              ttl_seconds=int(settings.task_lifespan_seconds + 86_400))
    return Fleet(settings=settings, session=session, redis=store, tokens=tokens,
                   limiter=limiter, client=client, records=records, leases=leases,
                   pending=pending, metrics=metrics, batches=batches,
                   stuck=StuckVerifications(store, int(settings.task_lifespan_seconds)),
                   clock=FleetClock(store, host=_host_clock(settings)),
                   # Three renewals per lease: one missed (a slow Redis) loses nothing.
                   keeper=LeaseKeeper(leases, settings.run_lease_seconds / 3),
                   broker=broker,
                   status_cache=RedisStatusCache(
                       store, settings.cadence.shared_answer_fresh_seconds,
                       upcoming=_upcoming(settings, broker))
                   if settings.coalesce_polling else None)


#: URNs read from one waiting message: enough for any call, however big the message.
MAX_UPCOMING_URNS = 60


def _upcoming(settings: Settings, broker: BrokerMessages | None) -> Upcoming | None:
    """The URNs of verification messages waiting on this worker's queue, next first."""
    if broker is None:
        return None

    def upcoming(count: int, due_by: float) -> list[str]:
        return [urn for kwargs in broker.next_kwargs(settings.queue, VERIFY_TASK, count, due_by)
                if isinstance(kwargs.get("task_urns"), list)
                for urn in kwargs["task_urns"][:MAX_UPCOMING_URNS] if isinstance(urn, str)]
    return upcoming


def _broker_messages(settings: Settings, store: redis.Redis) -> BrokerMessages | None:
    url = settings.effective_broker_url
    if not is_redis(url):
        return None
    broker = store if url == settings.redis_url else connect(url, settings.redis_master_name)
    return BrokerMessages(broker, celery_config(settings)["broker_transport_options"])


def _host_clock(settings: Settings) -> Callable[[], float]:
    skew = settings.test_host_clock_skew_seconds if settings.allow_clock_override else 0.0
    if not skew:
        return time.time
    return lambda: time.time() + skew


_by_pid: dict[int, Fleet] = {}


def current() -> Fleet | None:
    """This process's resources if it built them, without building them."""
    return _by_pid.get(os.getpid())


def runtime() -> Fleet:
    """This process's resources, built on first use after a fork."""
    pid = os.getpid()
    current = _by_pid.get(pid)
    if current is None:
        _by_pid.clear()
        current = _by_pid[pid] = build_runtime(get_settings())
    return current
