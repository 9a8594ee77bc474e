"""The user's side in integration tests: the example pipeline plus a recording callback."""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from celery import Task

from jobops.dev.pipeline import app, post_jobs, settings

__all__ = ["app", "post_jobs", "record_batch", "record_outcome"]

_store = redis.Redis.from_url(settings.redis_url)


@app.task(bind=True, name="tests.record_outcome")
def record_outcome(self: Task, outcome: dict[str, Any], *extra: Any) -> None:
    tag = outcome["context"]["test"]
    with _store.pipeline() as pipe:
        pipe.rpush(f"test:outcomes:{tag}", json.dumps({**outcome, "_extra": list(extra)}))
        pipe.rpush(f"test:callback-ids:{tag}", self.request.id)
        pipe.execute()


@app.task(bind=True, name="tests.record_batch")
def record_batch(self: Task, outcomes: list[dict[str, Any]], *extra: Any) -> None:
    """A BATCH callback: each outcome as record_outcome would, plus the batch it came in."""
    received_at = time.time()
    with _store.pipeline() as pipe:
        for outcome in outcomes:
            tag = outcome["context"]["test"]
            pipe.rpush(f"test:outcomes:{tag}", json.dumps(
                {**outcome, "_extra": list(extra), "_batch": self.request.id}))
        for tag in {o["context"]["test"] for o in outcomes}:
            pipe.rpush(f"test:batches:{tag}", json.dumps({
                "task_id": self.request.id, "size": len(outcomes),
                "received_at": received_at, "extra": list(extra)}))
        pipe.execute()
