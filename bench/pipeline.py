"""The benchmark's pipeline worker: records when each outcome's callback ran.

    bench:done      hash: task URN -> epoch seconds its callback ran (first time)
    bench:copies    count of callbacks received, duplicates included
    bench:flipped   hash: task URN -> when it stopped being IN_PROGRESS, for outcomes that
                    say so (``flipped_at``: the floor's, which asks no sandbox)
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import Celery

app = Celery("benchpipe", broker=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True,
                task_acks_late=True, worker_prefetch_multiplier=16)
_store = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))

DONE = "bench:done"
COPIES = "bench:copies"
FLIPPED = "bench:flipped"


def _record(outcomes: list[dict[str, Any]]) -> None:
    now = time.time()
    with _store.pipeline(transaction=False) as pipe:
        for outcome in outcomes:
            pipe.hsetnx(DONE, outcome["task_urn"], now)
            if "flipped_at" in outcome:
                pipe.hsetnx(FLIPPED, outcome["task_urn"], outcome["flipped_at"])
        pipe.incrby(COPIES, len(outcomes))
        pipe.execute()


@app.task(name="bench.record")
def record(outcome: dict[str, Any], *_: Any) -> None:
    _record([outcome])


@app.task(name="bench.record_batch")
def record_batch(outcomes: list[dict[str, Any]], *_: Any) -> None:
    _record(outcomes)
