"""``jobops demo``: the whole flow on one machine, from posting to every callback.

Uses the Redis at REDIS_URL (or starts a throwaway one), starts the sandbox in this
process, a jobops worker and a pipeline worker as child processes, posts a realistic mix
of CREATE/UPDATE/RENEW/CLOSE operations through the example pipeline, prints each
outcome as its callback fires, and exits when every task has its outcome.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from jobops.core.outcomes import count_statuses, outcome_cells
from jobops.dev.processes import redis_answers, start_redis, start_worker, stop, wait_ready
from sandbox import SandboxConfig, SandboxServer, SandboxState
from settings import load_settings
from settings.urls import masked

MIGRATING = "urn:li:organization:2002"
DESCRIPTION = ("Join a small team that builds the software our customers run every day. You "
               "will design, write and operate services, review code, and help us hire. ")


def _job(run: str, n: int, **extra: Any) -> dict[str, Any]:
    job = {
        "externalJobPostingId": f"demo-{run}-{n}",
        "title": f"Software Engineer {n}",
        "description": DESCRIPTION,
        "companyApplyUrl": f"https://careers.example.com/jobs/{n}",
        "location": "San Francisco, CA",
        "listedAt": int(time.time() * 1000),
        "integrationContext": "urn:li:organization:1001",
    }
    job.update(extra)
    return {k: v for k, v in job.items() if v is not None}


def batches(run: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """The operations the demo posts, in order; each one shows a different outcome."""
    return [
        ("CREATE", [
            _job(run, 1),
            _job(run, 2, alternateLocations=["Berlin, Germany", "London, UK", "Paris, France"]),
            _job(run, 3, alternateLocations=["Atlantis"]),
            _job(run, 4, location="New York, NY"),
            _job(run, 5, location="Austin, TX"),
            _job(run, 6, description="Too short."),
            _job(run, 7, integrationContext=MIGRATING),
            _job(run, 8, integrationContext=MIGRATING, description="Too short."),
            _job(run, 9, title=None),
        ]),
        ("CREATE", [_job(run, 1)]),
        ("UPDATE", [_job(run, 1, title="Senior Software Engineer"), _job(run, 4),
                    _job(run, 404)]),
        ("RENEW", [_job(run, 5), _job(run, 405)]),
        ("CLOSE", [_job(run, 4)]),
    ]


def _line(outcome: dict[str, Any]) -> str:
    cells = outcome_cells(outcome)
    return (f"{cells['status']:<10} {cells['operation']:<7} {cells['job']:<16} "
            f"{cells['location']:<18} {cells['live']:<9} {cells['detail']}")


def run_demo(timeout_seconds: float = 120.0) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="jobops-demo-"))
    children: list[subprocess.Popen[bytes]] = []
    redis_url = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
    if not redis_answers(redis_url):
        print(f"no Redis at {masked(redis_url)}; starting one")
        process, redis_url = start_redis(workdir)
        children.append(process)
    state = SandboxState(SandboxConfig(in_progress_seconds=2, in_progress_jitter_seconds=4,
                                       migrating_organizations=frozenset({MIGRATING})))
    server = SandboxServer(state)
    server.start_in_thread()
    run = uuid.uuid4().hex[:6]
    env = {
        "REDIS_URL": redis_url,
        "LINKEDIN_API_URL": server.url,
        "LINKEDIN_TOKEN_URL": server.url + "/oauth/v2/accessToken",
        "LINKEDIN_CLIENT_ID": state.config.client_id,
        "LINKEDIN_CLIENT_SECRET": state.config.client_secret,
        "JOBOPS_QUEUE": f"jobops-demo-{run}",
        "JOBOPS_CALLBACK_QUEUE": f"pipeline-demo-{run}",
        "JOBOPS_FIRST_CHECK_SECONDS": "3",
        "JOBOPS_POLL_INTERVAL_SECONDS": "1",
        "JOBOPS_MAX_POLL_INTERVAL_SECONDS": "4",
    }
    os.environ.update(env)
    try:
        # A bad setting of the caller's is named here, before any worker starts on it.
        load_settings()
        return _drive(run, env, state, workdir, children, timeout_seconds)
    finally:
        for child in reversed(children):
            stop(child)
        server.shutdown()


def _drive(run: str, env: dict[str, str], state: SandboxState, workdir: Path,
           children: list[subprocess.Popen[bytes]], timeout_seconds: float) -> int:
    import redis
    from celery import chain

    from jobops.dev import pipeline as demo_pipeline

    print(f"sandbox at {env['LINKEDIN_API_URL']}, Redis at {masked(env['REDIS_URL'])}, "
          f"logs in {workdir}")
    for app, queue in (("workers", env["JOBOPS_QUEUE"]),
                       ("jobops.dev.pipeline", env["JOBOPS_CALLBACK_QUEUE"])):
        log_path = workdir / f"{app}.log"
        children.append(start_worker(app, queue, env, log_path))
        wait_ready(children[-1], log_path)
    callbacks = {"DEFAULT": dict(demo_pipeline.show_outcome.s())}
    steps = []
    plan = batches(run)
    for index, (operation, jobs) in enumerate(plan):
        steps.append(demo_pipeline.post_jobs.si(jobs, operation))
        steps.append(demo_pipeline.app.signature(
            "jobops.schedule_verification",
            kwargs={"operation": operation, "callbacks": callbacks,
                    "context": {"run": run, "batch": index}}))
    chain(*steps).apply_async()
    print(f"posted {sum(len(j) for _, j in plan)} jobs in {len(plan)} operations; "
          "outcomes appear as their callbacks fire:\n")
    print(f"{'STATUS':<10} {'OP':<7} {'JOB':<16} {'LOCATION':<18} {'LIVE':<9} DETAIL")
    store = redis.Redis.from_url(env["REDIS_URL"])
    key = demo_pipeline.outcomes_key(run)
    seen: dict[str, int] = {}
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        counts = state.counts()
        expected = counts["tasks"] + counts["refused"]
        if counts["posts"] == len(plan) and sum(seen.values()) >= expected:
            break
        item = store.blpop([key], timeout=1)
        if item is None:
            continue
        outcome = json.loads(item[1])
        seen = count_statuses([outcome], seen)
        print(_line(outcome), flush=True)
    else:
        print(f"\ntimed out after {timeout_seconds:.0f} s; worker logs are in {workdir}")
        return 1
    store.delete(key)
    totals = ", ".join(f"{count} {status}" for status, count in sorted(seen.items()))
    print(f"\nall {sum(seen.values())} outcomes delivered: {totals}")
    return 0
