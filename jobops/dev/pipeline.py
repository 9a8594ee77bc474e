"""A small job-posting pipeline of the kind jobops plugs into, used by ``jobops demo``.

It is a separate Celery app, as a user's pipeline would be: it posts jobs to LinkedIn's
API (here the sandbox), chains into ``jobops.schedule_verification`` by name, and its
``demo.show_outcome`` callback hands each outcome to the demo's screen through Redis.
"""

from __future__ import annotations

import json
from typing import Any

import redis
import requests
from celery import Celery

from jobops.linkedin.oauth import request_token
from settings import get_settings

settings = get_settings()
app = Celery("pipeline", broker=settings.effective_broker_url)
app.conf.update(
    task_default_queue=settings.callback_queue,
    task_routes={"jobops.*": {"queue": settings.queue}},
    task_ignore_result=True,
    task_acks_late=True,
    worker_hijack_root_logger=False,
)


def outcomes_key(run: str) -> str:
    return f"demo:outcomes:{run}"


@app.task(name="demo.post_jobs")
def post_jobs(jobs: list[dict[str, Any]], operation: str) -> dict[str, Any]:
    """POST one batch of jobs with one operation; returns LinkedIn's answer."""
    with requests.Session() as session:
        token, _ = request_token(session, settings.linkedin_token_url,
                                 settings.linkedin_client_id,
                                 settings.linkedin_client_secret.get_secret_value(),
                                 settings.http_timeout_seconds)
        response = session.post(
            settings.linkedin_api_url.rstrip("/") + "/v2/simpleJobPostings",
            json={"elements": [{**job, "jobPostingOperationType": operation} for job in jobs]},
            headers={"Authorization": f"Bearer {token}", "x-restli-method": "batch_create"},
            timeout=settings.http_timeout_seconds,
        )
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


@app.task(name="demo.show_outcome")
def show_outcome(outcome: dict[str, Any]) -> None:
    store = redis.Redis.from_url(settings.redis_url)
    store.rpush(outcomes_key(outcome["context"]["run"]), json.dumps(outcome))
