"""Jobs for tests, and a direct client for the sandbox's posting endpoint."""

from __future__ import annotations

import time
import uuid
from typing import Any

import requests

from tests.env import SANDBOX_URL

DESCRIPTION = "A role for people who like building reliable systems. " * 3
MIGRATING = "urn:li:organization:2002"


def job(**fields: Any) -> dict[str, Any]:
    base = {
        "externalJobPostingId": f"job-{uuid.uuid4().hex[:12]}",
        "title": "Site Reliability Engineer",
        "description": DESCRIPTION,
        "companyApplyUrl": "https://careers.example.com/sre",
        "location": "Dublin, Ireland",
        "listedAt": int(time.time() * 1000),
        "integrationContext": "urn:li:organization:1001",
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def post(jobs: list[dict[str, Any]], operation: str) -> dict[str, Any]:
    """POST jobs to the test session's sandbox as a pipeline would; returns the answer."""
    return post_to(SANDBOX_URL, jobs, operation)


def post_to(sandbox_url: str, jobs: list[dict[str, Any]], operation: str) -> dict[str, Any]:
    with requests.Session() as session:
        token = session.post(sandbox_url + "/oauth/v2/accessToken", data={
            "grant_type": "client_credentials", "client_id": "sandbox-client",
            "client_secret": "sandbox-secret"}, timeout=5).json()["access_token"]
        response = session.post(
            sandbox_url + "/v2/simpleJobPostings",
            json={"elements": [{**j, "jobPostingOperationType": operation} for j in jobs]},
            headers={"Authorization": f"Bearer {token}", "x-restli-method": "batch_create"},
            timeout=5,
        )
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def task_urns(answer: dict[str, Any]) -> list[str]:
    return [element["id"] for element in answer["elements"] if "id" in element]


def posted_urns(count: int, operation: str = "CREATE") -> list[str]:
    """Task URNs of ``count`` freshly posted single-location jobs."""
    urns: list[str] = []
    while len(urns) < count:
        urns += task_urns(post([job() for _ in range(min(100, count - len(urns)))], operation))
    return urns
