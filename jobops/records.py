"""Outcome records in Redis: by task URN, by job, and each job's last known state.

Kept as long as LinkedIn keeps the task ids (the task lifespan) plus a day. Readable from
Python (``Records``) and from the command line (``jobops outcome``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import redis

from jobops import keys
from jobops.jobs import (
    ANY_LOCATION,
    borrow_state,
    establishes_state,
    needs_state,
    state_entry,
)

# KEYS: job state hash. ARGV: location field, entry JSON, operation time (epoch s), ttl s.
# Keeps, per field, the state set by the most recent operation, whatever order the
# outcomes arrive in.
_REMEMBER = """
for _, field in ipairs({ARGV[1], '*'}) do
  local old = redis.call('HGET', KEYS[1], field)
  if (not old) or cjson.decode(old)['at'] <= tonumber(ARGV[3]) then
    redis.call('HSET', KEYS[1], field, ARGV[2])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


class Records:
    def __init__(self, store: redis.Redis, ttl_seconds: int) -> None:
        self._store = store
        self.ttl_seconds = ttl_seconds
        self._remember = store.register_script(_REMEMBER)

    def seen(self, record_keys: Sequence[str]) -> list[bool]:
        """Whether each record exists: its callback was sent."""
        if not record_keys:
            return []
        return [value is not None for value in self._store.mget(record_keys)]

    def write(self, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Store delivered outcomes, index them by job, and update the jobs' state."""
        if not items:
            return
        with self._store.pipeline(transaction=False) as pipe:
            for key, outcome in items:
                pipe.set(key, json.dumps(outcome), ex=self.ttl_seconds)
                job = outcome.get("external_job_posting_id")
                if job is not None and outcome.get("task_urn") is not None:
                    pipe.sadd(keys.job_index_key(job), outcome["task_urn"])
                    pipe.expire(keys.job_index_key(job), self.ttl_seconds)
                if job is not None and establishes_state(outcome):
                    entry = {**state_entry(outcome), "at": _epoch(outcome["requested_at"])}
                    self._remember(keys=[keys.job_state_key(job)],
                                   args=[outcome["location"] or ANY_LOCATION, json.dumps(entry),
                                         entry["at"], self.ttl_seconds], client=pipe)
            pipe.execute()

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
        pattern = keys.outcome_key("urn:li:simpleJobPostingTask:*")
        batch: list[Any] = []
        for name in self._store.scan_iter(match=pattern, count=1000):
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
        urns = sorted(m.decode() if isinstance(m, bytes) else m for m in members)
        found = [o for o in self.outcomes([keys.outcome_key(u) for u in urns]) if o]
        return sorted(found, key=lambda o: (o["requested_at"], o["decided_at"]))
