"""A callback consumer for broker outage tests: records every copy it runs, by task id.

Its broker is the Redis under test (REDIS_URL), which the test kills; what it records goes
to the test session's own Redis (OUTAGE_RECORD_URL), which stays up, so copies are counted
rather than lost with the broker.
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

import redis
from celery import Celery, Task

app = Celery("outage-pipeline", broker=os.environ["REDIS_URL"])
app.conf.update(task_default_queue=os.environ["JOBOPS_CALLBACK_QUEUE"],
                task_ignore_result=True, worker_hijack_root_logger=False)


@cache
def _record() -> redis.Redis:
    return redis.Redis.from_url(os.environ["OUTAGE_RECORD_URL"])


def record_key(tag: str) -> str:
    return f"test:outage:{tag}"


@app.task(bind=True, name="outage.record")
def record(self: Task, outcome: dict[str, Any]) -> None:
    _record().rpush(record_key(outcome["context"]["test"]), json.dumps(
        {"task_id": self.request.id, "task_urn": outcome["task_urn"],
         "status": outcome["status"]}))
