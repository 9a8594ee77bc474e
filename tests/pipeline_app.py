"""The user's side in integration tests: the example pipeline plus a recording callback."""

from __future__ import annotations

import json
from typing import Any

import redis
from celery import Task

from jobops.demo_pipeline import app, post_jobs, settings

__all__ = ["app", "post_jobs", "record_outcome"]

_store = redis.Redis.from_url(settings.redis_url)


@app.task(bind=True, name="tests.record_outcome")
def record_outcome(self: Task, outcome: dict[str, Any], *extra: Any) -> None:
    tag = outcome["context"]["test"]
    with _store.pipeline() as pipe:
        pipe.rpush(f"test:outcomes:{tag}", json.dumps({**outcome, "_extra": list(extra)}))
        pipe.rpush(f"test:callback-ids:{tag}", self.request.id)
        pipe.execute()
