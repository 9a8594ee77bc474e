"""The straightforward card: verification as a competent team writes it from the design
card in a day, without jobops.

One task per operation (all its task URNs), one GET per ≤ 4 KB query of them, a token per
worker process, ``self.retry`` with the URNs still IN_PROGRESS, one callback per decided
URN, published in one producer batch. No coalescing across operations, no fleet-wide
rate or quota, no leases. jobops' delivery settings (``bench.delivery``), so a
comparison measures the code, not the configuration. Run as
``celery -A bench.card worker``; reads the same environment as jobops (REDIS_URL,
LINKEDIN_*, JOBOPS_QUEUE, JOBOPS_CALLBACK_QUEUE, JOBOPS_POLL_INTERVAL_SECONDS,
JOBOPS_ETA_TASK_LIMIT, JOBOPS_MAX_QUERY_BYTES).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import requests
from celery import Celery, Task

from bench.delivery import delivery_settings
from bench.linkedin import access_token, session

QUEUE = os.environ.get("JOBOPS_QUEUE", "card")
CALLBACK_QUEUE = os.environ.get("JOBOPS_CALLBACK_QUEUE", "pipeline")
API_URL = os.environ.get("LINKEDIN_API_URL", "http://127.0.0.1:8099")
POLL_SECONDS = float(os.environ.get("JOBOPS_POLL_INTERVAL_SECONDS", "60"))
MAX_QUERY_BYTES = int(os.environ.get("JOBOPS_MAX_QUERY_BYTES", "4096"))
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "PROCESSED"})

app = Celery("card")
app.conf.update(delivery_settings(), task_default_queue=QUEUE)


def queries(urns: list[str]) -> Iterator[tuple[list[str], str]]:
    """The URNs in groups whose query string stays within MAX_QUERY_BYTES."""
    group: list[str] = []
    query = ""
    for urn in urns:
        part = "ids=" + quote(urn, safe="")
        joined = f"{query}&{part}" if query else part
        if group and len(joined.encode()) > MAX_QUERY_BYTES:
            yield group, query
            group, joined = [], part
        group.append(urn)
        query = joined
    if group:
        yield group, query


def statuses(query: str) -> dict[str, Any]:
    for renew in (False, True):
        answer = session.get(f"{API_URL}/v2/simpleJobPostingTasks?{query}",
                              headers={"Authorization": f"Bearer {access_token(renew)}"},
                              timeout=30)
        if answer.status_code != 401:
            break
    answer.raise_for_status()
    results = answer.json().get("results")
    return results if isinstance(results, dict) else {}


@app.task(bind=True, name="card.verify_job_operation", max_retries=None)
def verify(self: Task, task_urns: list[str], operation: str, callback: str,
           context: dict[str, Any]) -> None:
    decided, pending = [], []
    try:
        for group, query in queries(task_urns):
            results = statuses(query)
            for urn in group:
                entry = results.get(urn)
                if isinstance(entry, dict) and entry.get("status") in TERMINAL:
                    decided.append({"task_urn": urn, "operation": operation,
                                    "status": entry["status"],
                                    "job_posting": entry.get("jobPosting"),
                                    "error_message": entry.get("errorMessage"),
                                    "context": context, "decided_at": time.time()})
                else:
                    pending.append(urn)
    except requests.RequestException as error:
        # Nothing sent yet: the whole operation is asked again.
        raise self.retry(countdown=POLL_SECONDS, exc=error) from None
    with app.producer_or_acquire() as producer, producer.batch():
        for outcome in decided:
            app.send_task(callback, args=(outcome,), queue=CALLBACK_QUEUE,
                          producer=producer)
    if pending:
        raise self.retry(args=(pending, operation, callback, context),
                         countdown=POLL_SECONDS)
