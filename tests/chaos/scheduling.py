"""The pipeline's side: operations posted to the sandbox and scheduled with jobops, spread
over time in a thread of their own while the workers are being killed."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import requests

from sandbox.state import SandboxConfig

#: Share of jobs posted with two alternate locations (three task URNs each).
MULTI_LOCATION_SHARE = 0.25
#: Shares of jobs that LinkedIn fails: a short description, an unknown location.
SHORT_DESCRIPTION_SHARE = 0.1
UNKNOWN_LOCATION_SHARE = 0.05


def operations_for(urns: int, operations: int, rng: random.Random, run: str
                   ) -> list[list[dict[str, Any]]]:
    """``operations`` CREATE operations of ``urns`` task URNs in all, sizes differing by at
    most one."""
    sizes = [urns // operations + (1 if n < urns % operations else 0)
             for n in range(operations)]
    return [_jobs_for(size, rng, f"{run}-{n}") for n, size in enumerate(sizes)]


def _jobs_for(urns: int, rng: random.Random, tag: str) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    while urns > 0:
        job: dict[str, Any] = {
            "externalJobPostingId": f"chaos-{tag}-{len(jobs)}",
            "title": "Chaos Engineer",
            "description": ("Short." if rng.random() < SHORT_DESCRIPTION_SHARE
                            else "Keeps systems honest. " * 6),
            "companyApplyUrl": "https://example.com/jobs",
            "location": ("Atlantis" if rng.random() < UNKNOWN_LOCATION_SHARE
                         else "Dublin, Ireland"),
            "listedAt": 0,
            "integrationContext": "urn:li:organization:1001",
        }
        if urns >= 3 and rng.random() < MULTI_LOCATION_SHARE:
            job["alternateLocations"] = ["Cork, Ireland", "Galway, Ireland"]
        urns -= 1 + len(job.get("alternateLocations", []))
        jobs.append(job)
    return jobs


def post(sandbox_url: str, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """POST the jobs as CREATE operations, as a pipeline does; returns LinkedIn's answer."""
    config = SandboxConfig()
    with requests.Session() as session:
        token = session.post(sandbox_url + "/oauth/v2/accessToken", data={
            "grant_type": "client_credentials", "client_id": config.client_id,
            "client_secret": config.client_secret}, timeout=5).json()["access_token"]
        response = session.post(
            sandbox_url + "/v2/simpleJobPostings",
            json={"elements": [{**job, "jobPostingOperationType": "CREATE"} for job in jobs]},
            headers={"Authorization": f"Bearer {token}", "x-restli-method": "batch_create"},
            timeout=5)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


class Scheduler(threading.Thread):
    """Posts each operation and schedules its answer, the n-th at n/len × spread_seconds."""

    def __init__(self, operations: list[list[dict[str, Any]]], spread_seconds: float,
                 sandbox_url: str, redis_url: str, run: str) -> None:
        super().__init__(name="chaos-scheduler", daemon=True)
        self.operations = operations
        self.spread_seconds = spread_seconds
        self.sandbox_url = sandbox_url
        self.redis_url = redis_url
        self.run_tag = run
        self.urns_scheduled = 0
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        # Imported here: settings are read from the environment the run has just set.
        from settings import get_settings
        from workers.scheduling import schedule_from_answer

        started = time.monotonic()
        try:
            # Settings are read once per process: read before the run set its environment,
            # they would send the work to whatever Redis REDIS_URL named (a shared one).
            if get_settings().redis_url != self.redis_url:
                raise RuntimeError("settings were read before the chaos run set REDIS_URL")
            for n, jobs in enumerate(self.operations):
                due = started + n * self.spread_seconds / len(self.operations)
                time.sleep(max(0.0, due - time.monotonic()))  # the pipeline's pace
                answer = post(self.sandbox_url, jobs)
                self.urns_scheduled += schedule_from_answer(
                    answer, "CREATE", {"DEFAULT": "chaos.record"},
                    {"chaos": self.run_tag})["task_urns"]
        # Kept for the run to report, rather than lost with the thread.
        except BaseException as error:
            self.error = error
        finally:
            self.done.set()
