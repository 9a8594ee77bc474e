"""The naive baseline: verification the way a user would write it without jobops.

One Celery task per task URN, one GET per URN, a token per worker process, and
``self.retry(countdown=…)`` while LinkedIn says IN_PROGRESS. jobops' delivery settings
(``bench.delivery``), so a comparison measures the code, not the configuration.
Run by bench.compare as ``celery -A bench.naive worker``; reads the same environment
variables as jobops (REDIS_URL, LINKEDIN_*, JOBOPS_QUEUE, JOBOPS_CALLBACK_QUEUE,
JOBOPS_POLL_INTERVAL_SECONDS).
"""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import quote

from celery import Celery, Task

from bench.delivery import delivery_settings
from bench.linkedin import access_token, session

QUEUE = os.environ.get("JOBOPS_QUEUE", "naive")
CALLBACK_QUEUE = os.environ.get("JOBOPS_CALLBACK_QUEUE", "pipeline")
API_URL = os.environ.get("LINKEDIN_API_URL", "http://127.0.0.1:8099")
POLL_SECONDS = float(os.environ.get("JOBOPS_POLL_INTERVAL_SECONDS", "60"))

app = Celery("naive")
app.conf.update(delivery_settings(), task_default_queue=QUEUE)


@app.task(bind=True, name="naive.verify", max_retries=None)
def verify(self: Task, urn: str, operation: str, callback: str,
           context: dict[str, Any]) -> None:
    answer = session.get(
        f"{API_URL}/v2/simpleJobPostingTasks?ids={quote(urn, safe='')}",
        headers={"Authorization": f"Bearer {access_token()}",
                 "X-Restli-Protocol-Version": "2.0.0"},
        timeout=30,
    )
    answer.raise_for_status()
    entry = answer.json()["results"][urn]
    if entry["status"] == "IN_PROGRESS":
        raise self.retry(countdown=POLL_SECONDS)
    outcome = {"task_urn": urn, "operation": operation, "status": entry["status"],
               "job_posting": entry.get("jobPosting"), "context": context,
               "decided_at": time.time()}
    app.send_task(callback, args=(outcome,), queue=CALLBACK_QUEUE)
