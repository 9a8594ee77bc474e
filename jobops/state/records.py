"""Outcome records in Redis: by task URN, by job, and each job's last known state.

Kept as long as LinkedIn keeps the task ids (the task lifespan) plus a day. Readable from
Python (``Records``) and from the command line (``jobops outcome``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import redis
from redis.client import Pipeline

from jobops.core.jobs import (
    ANY_LOCATION,
    borrow_state,
    establishes_state,
    needs_state,
    state_entry,
)
from jobops.state import keys, lua
from jobops.state.replies import text


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


class Records:
    def __init__(self, store: redis.Redis, ttl_seconds: int) -> None:
        self._store = store
        self.ttl_seconds = ttl_seconds
        self._record = lua.register(store, "record_outcome")

    def seen(self, record_keys: Sequence[str],
             prefetched: Mapping[str, Any] | None = None) -> list[bool]:
        """Whether each record exists: its callback was sent.

        ``prefetched``: raw values read already; keys missing from it are read now.
        """
        known = dict(prefetched or {})
        missing = [key for key in record_keys if key not in known]
        if missing:
            known.update(zip(missing, self._store.mget(missing), strict=True))
        return [known[key] is not None for key in record_keys]

    def write(self, items: Sequence[tuple[str, dict[str, Any]]],
              pipe: Pipeline | None = None) -> None:
        """Store delivered outcomes, index them by job, and update the jobs' state.

        With ``pipe``, the commands join it and run when its owner executes it.
        """
        if not items:
            return
        with lua.joined(self._store, pipe) as target:
            self._queue_writes(items, target)

    def _queue_writes(self, items: Sequence[tuple[str, dict[str, Any]]], pipe: Pipeline
                      ) -> None:
        for key, outcome in items:
            job = outcome.get("external_job_posting_id")
            indexed = outcome.get("task_urn") if job is not None else None
            field, entry, at = "", "", 0.0
            if job is not None and establishes_state(outcome):
                at = _epoch(outcome["requested_at"])
                field = outcome["location"] or ANY_LOCATION
                entry = json.dumps({**state_entry(outcome), "at": at})
            lua.queue(pipe, self._record,
                          [key, keys.job_index_key(job or ""), keys.job_state_key(job or "")],
                          [json.dumps(outcome), self.ttl_seconds, indexed or "", field, entry,
                           at])

    def fill_job_state(self, outcomes: Sequence[dict[str, Any]]) -> None:
        """Give each failed UPDATE/RENEW/CLOSE the state its job was last known in."""
        wanting = [o for o in outcomes if needs_state(o)]
        if not wanting:
            return
        with self._store.pipeline(transaction=False) as pipe:
            for outcome in wanting:
                pipe.hmget(keys.job_state_key(outcome["external_job_posting_id"]),
                           [outcome["location"] or ANY_LOCATION, ANY_LOCATION])
            answers = pipe.execute()
        for outcome, (at_location, anywhere) in zip(wanting, answers, strict=True):
            raw = at_location or anywhere
            if raw is not None:
                state = json.loads(raw)
                state.pop("at", None)
                borrow_state(outcome, state)

    def outcomes(self, record_keys: Sequence[str]) -> list[dict[str, Any] | None]:
        if not record_keys:
            return []
        return [None if raw is None else json.loads(raw)
                for raw in self._store.mget(record_keys)]

    def outcome(self, task_urn: str) -> dict[str, Any] | None:
        """The recorded outcome of one task URN, or None if it has none (yet)."""
        return self.outcomes([keys.outcome_key(task_urn)])[0]

    def with_context(self, key: str, value: str) -> list[dict[str, Any]]:
        """Recorded URN outcomes whose context has ``key`` equal to ``value`` (a scan)."""
        found = []
        batch: list[Any] = []
        for name in self._store.scan_iter(match=keys.URN_OUTCOMES_PATTERN, count=1000):
            batch.append(name)
            if len(batch) == 500:
                found += self._matching(batch, key, value)
                batch = []
        return found + self._matching(batch, key, value)

    def _matching(self, names: list[Any], key: str, value: str) -> list[dict[str, Any]]:
        if not names:
            return []
        outcomes = [json.loads(raw) for raw in self._store.mget(names) if raw is not None]
        return [o for o in outcomes if str((o.get("context") or {}).get(key)) == value]

    def for_job(self, external_job_posting_id: str) -> list[dict[str, Any]]:
        """Every recorded outcome of a job, oldest operation first."""
        members = self._store.smembers(keys.job_index_key(external_job_posting_id))
        urns = sorted(text(m) for m in members)
        found = [o for o in self.outcomes([keys.outcome_key(u) for u in urns]) if o]
        return sorted(found, key=lambda o: (o["requested_at"], o["decided_at"]))
