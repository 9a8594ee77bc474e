"""Firing callbacks: one task per outcome, sent once, with a deterministic task id."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from celery import Celery, Signature, signature

from jobops.request import DEFAULT_CALLBACK
from settings import Settings

log = logging.getLogger(__name__)
_NAMESPACE = uuid.UUID("6f1c39c5-3c7e-4f55-9a44-2f0b8f1c5a10")


def callback_task_id(record_key: str) -> str:
    """The same outcome always gets the same callback task id, so consumers can de-dup."""
    return f"jobops-outcome-{uuid.uuid5(_NAMESPACE, record_key)}"


def build_signature(app: Celery, spec: Any, default_queue: str) -> Signature:
    sig = app.signature(spec) if isinstance(spec, str) else signature(dict(spec), app=app)
    options = sig.options
    if not any(options.get(key) for key in ("queue", "exchange", "routing_key")):
        # Our app routes only jobops.*; an unrouted name would land on our own queue.
        sig = sig.set(queue=default_queue)
    return sig


def deliver(
    app: Celery,
    store: redis.Redis,
    settings: Settings,
    outcomes: Sequence[tuple[str, dict[str, Any]]],
    callbacks: Mapping[str, Any],
) -> int:
    """Send the callback of each (record key, outcome) not delivered before; returns sent."""
    if not outcomes:
        return 0
    seen = store.mget([key for key, _ in outcomes])
    fresh = [(key, outcome) for (key, outcome), old in zip(outcomes, seen, strict=True)
             if old is None]
    sent = 0
    with app.producer_or_acquire() as producer:
        for key, outcome in fresh:
            spec = callbacks.get(outcome["status"], callbacks.get(DEFAULT_CALLBACK))
            if spec is None:
                continue
            build_signature(app, spec, settings.callback_queue).apply_async(
                args=(outcome,), task_id=callback_task_id(key), producer=producer
            )
            sent += 1
    # Recorded after sending: a crash in between sends again (same task id), never loses.
    ttl_seconds = int(settings.task_lifespan_seconds + 86_400)
    with store.pipeline(transaction=False) as pipe:
        for key, outcome in fresh:
            pipe.set(key, json.dumps(outcome), ex=ttl_seconds)
        pipe.execute()
    if len(fresh) < len(outcomes):
        log.info("skipped %d outcomes delivered earlier", len(outcomes) - len(fresh))
    return sent
