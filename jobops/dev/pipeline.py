"""A small job-posting pipeline of the kind jobops plugs into, used by ``jobops demo``.

Another codebase, as a user's pipeline is: it imports nothing of jobops, reads the same
environment variables, posts jobs to LinkedIn's API (here the sandbox) and chains into
``jobops.schedule_verification`` by name.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import redis
import requests
from celery import Celery


@dataclass(frozen=True)
class PipelineSettings:
    """What the pipeline reads from the environment (jobops' variables, same defaults)."""

    redis_url: str = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
    broker_url: str = os.environ.get("CELERY_BROKER_URL") or redis_url
    queue: str = os.environ.get("JOBOPS_QUEUE", "jobops")
    callback_queue: str = os.environ.get("JOBOPS_CALLBACK_QUEUE", "celery")
    api_url: str = os.environ.get("LINKEDIN_API_URL", "https://api.linkedin.com")
    token_url: str = os.environ.get("LINKEDIN_TOKEN_URL",
                                    "https://www.linkedin.com/oauth/v2/accessToken")
    client_id: str = os.environ.get("LINKEDIN_CLIENT_ID", "")
    client_secret: str = field(default=os.environ.get("LINKEDIN_CLIENT_SECRET", ""),
                               repr=False)
    timeout_seconds: float = 30.0


settings = PipelineSettings()
app = Celery("pipeline", broker=settings.broker_url)
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
        granted = session.post(settings.token_url, timeout=settings.timeout_seconds, data={
            "grant_type": "client_credentials", "client_id": settings.client_id,
            "client_secret": settings.client_secret})
        granted.raise_for_status()
        token = granted.json()["access_token"]
        response = session.post(
            settings.api_url.rstrip("/") + "/v2/simpleJobPostings",
            json={"elements": [{**job, "jobPostingOperationType": operation} for job in jobs]},
            headers={"Authorization": f"Bearer {token}", "x-restli-method": "batch_create"},
            timeout=settings.timeout_seconds,
        )
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


@app.task(name="demo.show_outcome")
def show_outcome(outcome: dict[str, Any]) -> None:
    store = redis.Redis.from_url(settings.redis_url)
    store.rpush(outcomes_key(outcome["context"]["run"]), json.dumps(outcome))
