"""Firing callbacks: one task per outcome, sent once, with a deterministic task id."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from celery import Celery, Signature, signature

from jobops.records import Records
from jobops.request import DEFAULT_CALLBACK

log = logging.getLogger(__name__)
_NAMESPACE = uuid.UUID("6f1c39c5-3c7e-4f55-9a44-2f0b8f1c5a10")


def callback_task_id(record_key: str) -> str:
    """The same outcome always gets the same callback task id, so consumers can de-dup."""
    return f"jobops-outcome-{uuid.uuid5(_NAMESPACE, record_key)}"


def outcome_callback(callbacks: Mapping[str, Any], status: str) -> Any:
    """The callback of an outcome's status, else DEFAULT, else None."""
    return callbacks.get(status, callbacks.get(DEFAULT_CALLBACK))


def build_signature(app: Celery, spec: Any, default_queue: str) -> Signature:
    sig = app.signature(spec) if isinstance(spec, str) else signature(dict(spec), app=app)
    options = sig.options
    if not any(options.get(key) for key in ("queue", "exchange", "routing_key")):
        # Our app routes only jobops.*; an unrouted name would land on our own queue.
        sig = sig.set(queue=default_queue)
    return sig


def deliver(
    app: Celery,
    records: Records,
    callback_queue: str,
    items: Sequence[tuple[str, dict[str, Any], Any]],
) -> int:
    """Send each (record key, payload, callback) not delivered before; returns how many.

    Every payload is recorded, with or without a callback, so it can be looked up later.
    """
    fresh = [item for item, seen in zip(items, records.seen([k for k, _, _ in items]),
                                        strict=True) if not seen]
    sent = 0
    with app.producer_or_acquire() as producer:
        for key, payload, spec in fresh:
            if spec is None:
                continue
            build_signature(app, spec, callback_queue).apply_async(
                args=(payload,), task_id=callback_task_id(key), producer=producer
            )
            sent += 1
    # Recorded after sending: a crash in between sends again (same task id), never loses.
    records.write([(key, payload) for key, payload, _ in fresh])
    if len(fresh) < len(items):
        log.info("skipped %d outcomes delivered earlier", len(items) - len(fresh))
    return sent
