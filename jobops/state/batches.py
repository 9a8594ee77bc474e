"""Batched callbacks: outcomes gathered in Redis into lists of at most N, or T seconds old."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.client import Pipeline

from jobops.core.request import BATCH_SECONDS, BATCH_SIZE, MAX_BATCH_BYTES
from jobops.state import keys, lua
from jobops.state.replies import text

# A sealed batch not deleted this long after sealing lost its publisher.
REPUBLISH_AFTER_SECONDS = 10.0
# Outcomes per append script, and their JSON bytes (one outcome bigger goes alone):
# bounds how long one script holds Redis.
APPEND_CHUNK = 500
APPEND_CHUNK_BYTES = MAX_BATCH_BYTES
# Open batches sealed by one flush script.
FLUSH_LIMIT = 100




def _chunks(items: Sequence[tuple[str, str]]) -> Iterator[Sequence[tuple[str, str]]]:
    """(record key, outcome JSON) pairs in runs of at most APPEND_CHUNK outcomes and
    APPEND_CHUNK_BYTES bytes (a bigger outcome alone)."""
    start, size = 0, 0
    for end, (_, item) in enumerate(items):
        if end > start and (end - start >= APPEND_CHUNK or size + len(item) > APPEND_CHUNK_BYTES):
            yield items[start:end]
            start, size = end, 0
        size += len(item)
    if start < len(items):
        yield items[start:]


@dataclass(frozen=True)
class BatchSpec:
    """A BATCH callback, normalized: the Celery signature and when a batch is full."""

    signature: Mapping[str, Any]
    size: int
    seconds: float

    @property
    def batch_id(self) -> str:
        """The digest of the spec: every verification that registers the same spec fills
        the same batch."""
        canonical = json.dumps({"signature": self.signature, "size": self.size,
                           "seconds": self.seconds}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def batch_spec(raw: Any, default_size: int, default_seconds: float) -> BatchSpec:
    """Normalize a (validated) BATCH spec — a task name, or a signature with optional
    ``batch_size`` and ``batch_seconds`` — so equal callbacks share one batch."""
    given: dict[str, Any] = {"task": raw} if isinstance(raw, str) else dict(raw)
    size = given.pop(BATCH_SIZE, None)
    seconds = given.pop(BATCH_SECONDS, None)
    signature = {
        "task": given.pop("task"),
        "args": list(given.pop("args", None) or []),
        "kwargs": dict(given.pop("kwargs", None) or {}),
        "options": dict(given.pop("options", None) or {}),
        # Unset keys of Celery's dict(sig) (subtask_type None, immutable False…) are
        # dropped, so a task name and its plain signature share a batch.
        **{key: value for key, value in given.items() if value is not None and value is not False},
    }
    return BatchSpec(signature=signature,
                     size=int(default_size if size is None else size),
                     seconds=float(default_seconds if seconds is None else seconds))


@dataclass(frozen=True)
class SealedBatch:
    sealed_id: str
    signature: dict[str, Any]
    outcomes: list[dict[str, Any]]


@dataclass(frozen=True)
class Flush:
    """What one flush found: batches sealed now, ones re-claimed, and the next deadline."""

    sealed: list[str]
    stale: list[str]
    next_due_seconds: float | None



class Batches:
    """Open and sealed batches. Sealing moves a batch's outcomes into
    ``jobops:batches:sealed`` under a new sealed id in the same script, so an outcome is in
    exactly one batch however many processes append and flush at once."""

    def __init__(self, store: redis.Redis, default_size: int, default_seconds: float,
                 ttl_seconds: int, republish_after_seconds: float = REPUBLISH_AFTER_SECONDS,
                 max_bytes: int = MAX_BATCH_BYTES) -> None:
        self._store = store
        self.max_bytes = max_bytes
        self.default_size = default_size
        self.default_seconds = default_seconds
        self.ttl_seconds = ttl_seconds
        self.republish_after_seconds = republish_after_seconds
        self._append = lua.register(store, "batch_append")
        self._flush = lua.register(store, "batch_flush")

    def spec(self, raw: Any) -> BatchSpec:
        return batch_spec(raw, self.default_size, self.default_seconds)

    def append(self, spec: BatchSpec, items: Sequence[tuple[str, Mapping[str, Any]]]
               ) -> list[str]:
        """Add (record key, outcome) pairs not added before; returns the ids it sealed.

        One script per chunk appends (each outcome at most once: a marker per outcome and
        batch) and seals every full batch: full at ``batch_size`` outcomes, or before its
        outcomes' JSON would pass ``max_bytes`` (so no script assembles a bigger string).
        """
        sealed: list[str] = []
        for script_keys, args in self._scripts(spec, items):
            sealed += [text(sid) for sid in self._append(keys=script_keys, args=args)]
        return sealed

    def queue_append(self, pipe: Pipeline, spec: BatchSpec,
                     items: Sequence[tuple[str, Mapping[str, Any]]]
                     ) -> Callable[[list[Any]], list[str]]:
        """``append`` within ``pipe``; returns how to read the sealed ids from its results."""
        positions = []
        for script_keys, args in self._scripts(spec, items):
            positions.append(len(pipe.command_stack))
            lua.queue(pipe, self._append, script_keys, args)
        return lambda results: [text(sid) for at in positions for sid in results[at]]

    def _scripts(self, spec: BatchSpec, items: Sequence[tuple[str, Mapping[str, Any]]]
                 ) -> Iterator[tuple[list[str], list[Any]]]:
        """Keys and arguments of each append script for ``items``."""
        batch_id = spec.batch_id
        signature = json.dumps(spec.signature, sort_keys=True)
        texts = [(key, json.dumps(outcome)) for key, outcome in items]
        for chunk in _chunks(texts):
            yield ([keys.batch_items_key(batch_id), keys.batch_key(batch_id),
                    keys.BATCHES_OPEN, keys.BATCHES_SEALED, keys.BATCHES_SEALED_AT,
                    *(keys.batched_key(batch_id, key) for key, _ in chunk)],
                   [batch_id, spec.size, max(1, int(spec.seconds * 1000)), signature,
                    self.ttl_seconds, self.max_bytes, *(item for _, item in chunk)])

    def flush(self, limit: int = FLUSH_LIMIT) -> Flush:
        """Seal every batch past its deadline and claim sealed ones left unpublished.

        Run by each worker's flusher: a batch whose first outcome is ``batch_seconds`` old
        is sealed whatever its size; a sealed batch still here ``republish_after_seconds``
        after sealing lost its publisher, and is claimed to be sent again (with the same
        task id).
        """
        wait_ms, fresh, stale = self._flush(
            keys=[keys.BATCHES_OPEN, keys.BATCHES_SEALED, keys.BATCHES_SEALED_AT],
            args=[keys.batch_key(""), limit, int(self.republish_after_seconds * 1000)])
        return Flush(sealed=[text(s) for s in fresh], stale=[text(s) for s in stale],
                     next_due_seconds=None if int(wait_ms) < 0 else int(wait_ms) / 1000)

    def sealed(self, sealed_ids: Sequence[str]) -> list[SealedBatch]:
        """The sealed batches still waiting to be published, of ``sealed_ids``."""
        if not sealed_ids:
            return []
        found, gone = [], []
        raw_batches = self._store.hmget(keys.BATCHES_SEALED, list(sealed_ids))
        for sealed_id, raw in zip(sealed_ids, raw_batches, strict=True):
            if raw is None:
                gone.append(sealed_id)  # published meanwhile by another process
            else:
                batch = json.loads(raw)
                found.append(SealedBatch(sealed_id, batch["signature"], batch["outcomes"]))
        if gone:
            self._store.zrem(keys.BATCHES_SEALED_AT, *gone)
        return found

    def sent(self, sealed_id: str) -> None:
        """A sealed batch was published: forget it (never before, so that a publisher
        that dies first leaves it to a flusher)."""
        with self._store.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.BATCHES_SEALED, sealed_id)
            pipe.zrem(keys.BATCHES_SEALED_AT, sealed_id)
            pipe.execute()
