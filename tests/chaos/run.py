"""One chaos run: its Redis, the sandbox, the workers, then scheduling and disruptions."""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox import SandboxConfig, SandboxServer, SandboxState
from sandbox.state import FAULTS
from tests.chaos import report
from tests.chaos.disruptions import Disruptions, Timeline
from tests.chaos.fleet import Fleet
from tests.chaos.observer import Observer
from tests.chaos.profiles import Profile
from tests.chaos.redis_server import RedisServer
from tests.chaos.scheduling import Scheduler, operations_for

#: A timed-out call must be one the client gave up on, so the sandbox sleeps longer.
FAULT_TIMEOUT_SECONDS = 2.5
INHERITED_SETTINGS = ("JOBOPS_", "LINKEDIN_", "REDIS_URL", "CELERY_", "FLOWER_")
WORKER_ENV = {
    "JOBOPS_QUEUE": "jobops-chaos",
    "JOBOPS_CALLBACK_QUEUE": "pipeline-chaos",
    "JOBOPS_FIRST_CHECK_SECONDS": "1",
    "JOBOPS_POLL_INTERVAL_SECONDS": "0.5",
    "JOBOPS_MAX_POLL_INTERVAL_SECONDS": "2",
    "JOBOPS_VISIBILITY_TIMEOUT_SECONDS": "20",
    "JOBOPS_HTTP_TIMEOUT_SECONDS": "2",
    "JOBOPS_TOKEN_LOCK_SECONDS": "3",
    "JOBOPS_CALLS_PER_SECOND": "200",
    "JOBOPS_QUOTA_RESERVE": "0",
    "JOBOPS_RUN_LEASE_SECONDS": "10",
    "JOBOPS_SWEEP_INTERVAL_SECONDS": "2",
    # A 429 or a refused token pauses the fleet as in production, only for seconds.
    "JOBOPS_PAUSE_FIRST_SECONDS": "1",
    "JOBOPS_PAUSE_MAX_SECONDS": "4",
}


def run(profile: Profile, seed: int, strict: bool) -> dict[str, Any]:
    """The run's report; its "checks_failed" is empty if it counts as a pass."""
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="jobops-chaos-"))
    print(f"chaos run ({profile.name}), seed {seed}, logs in {workdir}", flush=True)
    redis_server = RedisServer(workdir)
    redis_server.start()
    state = SandboxState(SandboxConfig(
        in_progress_seconds=profile.in_progress_seconds,
        in_progress_jitter_seconds=profile.in_progress_jitter_seconds,
        fault_timeout_seconds=FAULT_TIMEOUT_SECONDS,
        fault_rates={kind: profile.fault_rate / len(FAULTS) for kind in FAULTS}))
    server = SandboxServer(state)
    server.start_in_thread()
    env = {**WORKER_ENV, "REDIS_URL": redis_server.url, "LINKEDIN_API_URL": server.url,
           "LINKEDIN_TOKEN_URL": server.url + "/oauth/v2/accessToken",
           "LINKEDIN_CLIENT_ID": state.config.client_id,
           "LINKEDIN_CLIENT_SECRET": state.config.client_secret}
    _set_environment(env)
    fleet = Fleet(env, workdir, rng)
    try:
        fleet.start()
        return _disrupt_and_measure(profile, seed, strict, rng, state, server.url,
                                    redis_server, fleet)
    finally:
        fleet.stop()
        server.shutdown()
        redis_server.stop()


def _set_environment(env: dict[str, str]) -> None:
    """The run's settings and nothing inherited, so its figures hold for the parameters it
    reports; this process schedules too, so it must see the same Redis and queues."""
    for name in list(os.environ):
        if name.startswith(INHERITED_SETTINGS):
            del os.environ[name]
    os.environ.update(env)


def _disrupt_and_measure(profile: Profile, seed: int, strict: bool, rng: random.Random,
                         state: SandboxState, sandbox_url: str, redis_server: RedisServer,
                         fleet: Fleet) -> dict[str, Any]:
    # One of each kind first, in an order of the seed's choosing, then the dice.
    state.force_faults(rng.sample(FAULTS, len(FAULTS)))
    operations = operations_for(profile.urns, profile.operations, rng, f"{seed:x}")
    scheduler = Scheduler(operations, profile.schedule_seconds, sandbox_url,
                          redis_server.url, f"{seed:x}")
    queues = [fleet.env["JOBOPS_QUEUE"], fleet.env["JOBOPS_CALLBACK_QUEUE"]]
    observer = Observer(redis_server.url, queues)
    started = time.monotonic()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    scheduler.start()
    disruptions = Timeline(profile, fleet, redis_server, scheduler, observer,
                           queues[0]).run()
    expected = {urn: task.final["status"] for urn, task in state.tasks_snapshot().items()}
    all_in = _wait(lambda: (observer.delivered() or 0) >= len(expected), fleet,
                   profile.timeout_seconds)
    # Until nothing is left that could send a second copy, a duplicate could still come.
    quiet = all_in and _wait(observer.quiet, fleet, profile.settle_seconds)
    return _report(profile, strict, state, observer, fleet, disruptions, expected, {
        "seed": seed, "started_at": started_at, "operations": len(operations),
        "urns_scheduled_by_pipeline": scheduler.urns_scheduled, "quiet_at_end": quiet,
        "left_at_end": observer.leftovers(),
        "worker_unrecoverable_errors": fleet.unrecoverable_errors(),
        "wall_seconds": round(time.monotonic() - started, 1)})


def _report(profile: Profile, strict: bool, state: SandboxState,
            observer: Observer, fleet: Fleet, disruptions: Disruptions,
            expected: dict[str, str], extra: dict[str, Any]) -> dict[str, Any]:
    figures = {**extra, **report.measure(observer.store, expected, state, disruptions,
                                         fleet.exits)}
    figures["targets"] = report.targets(figures, profile)
    figures["checks_failed"] = report.judge(figures, profile, strict)
    return figures


def _wait(condition: Callable[[], bool], fleet: Fleet, timeout_seconds: float) -> bool:
    """Supervise the workers until ``condition()`` holds; False if it never did."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        fleet.supervise()
        if condition():
            return True
        time.sleep(0.2)
    return False
