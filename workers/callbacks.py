"""Firing callbacks: one task per outcome, or one per batch, with deterministic task ids."""

from __future__ import annotations

import contextlib
import functools
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from celery import Celery, Signature, signature
from redis.client import Pipeline

from jobops.core.request import DEFAULT_CALLBACK
from jobops.state.keys import BATCH_TASK_ID_PREFIX, OUTCOME_TASK_ID_PREFIX
from workers.config import is_amqp
from workers.runtime import Fleet

log = logging.getLogger(__name__)
_NAMESPACE = uuid.UUID("6f1c39c5-3c7e-4f55-9a44-2f0b8f1c5a10")


def callback_task_id(record_key: str) -> str:
    """The same outcome always gets the same callback task id, so consumers can de-dup."""
    return f"{OUTCOME_TASK_ID_PREFIX}{uuid.uuid5(_NAMESPACE, record_key)}"


def batch_task_id(sealed_id: str) -> str:
    """A sealed batch sent again (its sender died) carries the same task id."""
    return f"{BATCH_TASK_ID_PREFIX}{uuid.uuid5(_NAMESPACE, sealed_id)}"


def outcome_callback(callbacks: Mapping[str, Any], status: str) -> Any:
    """The callback of an outcome's status, else DEFAULT, else None."""
    return callbacks.get(status, callbacks.get(DEFAULT_CALLBACK))


def build_signature(app: Celery, spec: Any, default_queue: str) -> Signature:
    if isinstance(spec, str):
        # Most pipelines name one callback task: built once, copied by apply_async.
        return _named_signature(app, spec, default_queue).clone()
    return _routed(signature(dict(spec), app=app), default_queue)


@functools.lru_cache(maxsize=256)
def _named_signature(app: Celery, name: str, default_queue: str) -> Signature:
    return _routed(app.signature(name), default_queue)


def _routed(sig: Signature, default_queue: str) -> Signature:
    options = sig.options
    if not any(options.get(key) for key in ("queue", "exchange", "routing_key")):
        # Our app routes only jobops.*; an unrouted name would land on our own queue.
        sig = sig.set(queue=default_queue)
    if sig.app is not None and is_amqp(str(sig.app.conf.broker_url)):
        # The pipeline's queues are the pipeline's: Celery would declare a queue it does
        # not know as a classic one, which RabbitMQ refuses for a quorum queue (and
        # closes the channel). Published without declaring; workers.checks makes sure
        # JOBOPS_CALLBACK_QUEUE exists.
        sig = sig.set(declare=[])
    return sig


def deliver(
    app: Celery,
    fleet: Fleet,
    items: Sequence[tuple[str, dict[str, Any], Any]],
    batch: Any = None,
    prefetched: Mapping[str, Any] | None = None,
    pipe: Pipeline | None = None,
    after: list[Callable[[list[Any]], object]] | None = None,
    producer: Any = None,
) -> int:
    """Send each (record key, payload, callback) not delivered before; returns how many.

    Every payload is recorded, with or without a callback, so it can be looked up later.
    With a ``batch`` (a BATCH callback spec), each is also added to that batch.
    ``prefetched``: record values read already. With ``pipe``, the batch additions and
    the records are written when its owner executes it, which must be after this
    returns, and then calls each of ``after`` (required with ``pipe``) with the results.
    ``producer``: publish with it (and in its open batch, if any).
    """
    fresh = [item for item, seen in zip(
        items, fleet.records.seen([k for k, _, _ in items], prefetched), strict=True) if not seen]
    sent = 0
    with app.producer_or_acquire(producer) as producer:
        # One round trip for all of this run's callbacks (kombu's batch publish on Redis).
        with producer.batch() if len(fresh) > 1 else contextlib.nullcontext():
            for key, payload, spec in fresh:
                if spec is None:
                    continue
                build_signature(app, spec, fleet.settings.callback_queue).apply_async(
                    args=(payload,), task_id=callback_task_id(key), producer=producer,
                    argsrepr=describe_payload(payload))
                sent += 1
        sealed: list[str] = []
        if batch is not None and fresh:
            # Before the record: a crash in between adds again, which the batch's
            # per-outcome marker turns into nothing.
            added = [(key, payload) for key, payload, _ in fresh]
            if pipe is None:
                sealed = fleet.batches.append(fleet.batches.spec(batch), added)
            else:
                read = fleet.batches.queue_append(pipe, fleet.batches.spec(batch), added)
                if after is None:
                    raise ValueError("deliver with a pipe and a batch needs an after list")
                # A crash before this runs leaves the batch sealed: a flusher sends it.
                after.append(lambda results: publish_batches(app, fleet, read(results)))
        # Recorded after sending: a crash in between sends again (same task id), never loses.
        fleet.records.write([(key, payload) for key, payload, _ in fresh], pipe)
        publish_batches(app, fleet, sealed, producer)
    if len(fresh) < len(items):
        log.info("skipped %d outcomes delivered earlier", len(items) - len(fresh))
    return sent


def describe_payload(payload: Mapping[str, Any]) -> str:
    """A one-line picture of a callback's argument for Flower; also spares Celery a
    repr of the whole outcome per message."""
    subject = payload.get("task_urn") or payload.get("external_job_posting_id") or \
        f"element {payload.get('element_index')}"
    return f"{payload.get('status')} · {payload.get('operation')} · {subject}"


def describe_batch(outcomes: Sequence[Mapping[str, Any]]) -> str:
    """A short picture of a batch's argument for Flower, instead of the whole list."""
    names = [str(o.get("task_urn")).rsplit(":", 1)[-1][:8] + "…" if o.get("task_urn")
             else f"element {o.get('element_index')}" for o in outcomes[:3]]
    more = f" +{len(outcomes) - 3} more" if len(outcomes) > 3 else ""
    noun = "outcome" if len(outcomes) == 1 else "outcomes"
    return f"BATCH · {len(outcomes)} {noun} ({', '.join(names)}{more})"


def publish_batches(app: Celery, fleet: Fleet, sealed_ids: Sequence[str],
                    producer: Any = None) -> int:
    """Send sealed batches, then forget each; returns how many were sent.

    A batch whose sending fails stays sealed, and a flusher sends it again later.
    """
    batches = fleet.batches.sealed(sealed_ids)
    if not batches:
        return 0
    with app.producer_or_acquire(producer) as producer:
        for batch in batches:
            build_signature(app, batch.signature, fleet.settings.callback_queue).apply_async(
                args=(batch.outcomes,), task_id=batch_task_id(batch.sealed_id),
                producer=producer, argsrepr=describe_batch(batch.outcomes))
            # Forgotten only once sent: a failed send leaves it sealed for a flusher.
            fleet.batches.sent(batch.sealed_id)
            fleet.metrics.add("jobops_batches_sent_total")
            fleet.metrics.add("jobops_batched_outcomes_total", len(batch.outcomes))
            log.info("sent batch %s: %d outcomes to %s", batch.sealed_id,
                     len(batch.outcomes), batch.signature["task"])
    return len(batches)
