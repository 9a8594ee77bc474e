"""Heartbeat leases with real workers: a dead run's round is taken over within one lease,
and a live run slower than its lease keeps its round."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable

import pytest
import redis
from celery import Celery

from jobops.state.keys import run_key
from sandbox import SandboxState
from settings import Settings
from tests.conftest import Recorder
from tests.env import REDIS_URL
from tests.jobs import posted_urns

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]
#: The production default (the suite's workers run with a shorter one).
LEASE_SECONDS = Settings.model_fields["run_lease_seconds"].default


def send(queue: str, recorder: Recorder, urns: list[str], task_id: str) -> None:
    """As a pipeline sends it: by name, from an app of its own."""
    pipeline = Celery("pipeline", broker=REDIS_URL)
    try:
        pipeline.send_task("jobops.verify_job_operation", queue=queue, task_id=task_id,
                           kwargs={"task_urns": urns, "operation": "CREATE",
                                   "callbacks": recorder.callbacks,
                                   "context": recorder.context})
    finally:
        pipeline.close()


def wait_running(store: redis.Redis, verification_id: str) -> None:
    deadline = time.monotonic() + 20
    while not (store.get(run_key(verification_id, 0)) or b"").startswith(b"running:"):
        assert time.monotonic() < deadline, "the round never started"
        time.sleep(0.05)


def pool_processes(queue: str) -> list[int]:
    """The pool processes of the worker consuming ``queue`` (its main process spared)."""
    found = subprocess.run(["pgrep", "-f", "--", f"-Q {queue} "], capture_output=True,
                           text=True)
    pids = {int(pid) for pid in found.stdout.split()}
    pool = [pid for pid in pids if _parent(pid) in pids]
    assert pool, f"no pool process of the worker of {queue}: {found.stdout!r}"
    return pool


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def test_a_round_whose_process_died_is_taken_over_within_one_lease(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis,
        jobops_worker: Callable[..., str]) -> None:
    queue = jobops_worker(JOBOPS_RUN_LEASE_SECONDS=str(LEASE_SECONDS))
    sandbox.config.in_progress_seconds = 0
    urns = posted_urns(3)
    sandbox.config.fault_slow_seconds = 4
    sandbox.config.fault_rates = {"slow": 1.0}  # the run is on the wire when it dies
    verification_id = str(uuid.uuid4())
    send(queue, recorder, urns, verification_id)
    wait_running(store, verification_id)
    for pid in pool_processes(queue):
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    sandbox.config.fault_rates = {}
    outcomes = recorder.wait(3, timeout_seconds=60, settle_seconds=1)
    took = time.monotonic() - killed_at
    assert sorted(o["task_urn"] for o in outcomes) == sorted(urns)
    assert {o["status"] for o in outcomes} == {"SUCCEEDED"}
    # One lease for the dead holder's claim to run out, plus the copy's own run.
    assert took <= LEASE_SECONDS + 5, f"outcomes {took:.1f} s after the kill"


def test_a_run_slower_than_its_lease_keeps_its_round_from_a_copy(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis,
        jobops_worker: Callable[..., str]) -> None:
    queue = jobops_worker(JOBOPS_RUN_LEASE_SECONDS="1")
    sandbox.config.in_progress_seconds = 0
    urns = posted_urns(1)
    before = len(sandbox.status_calls())
    # Almost two leases on the wire (and within the tests' 2 s HTTP timeout).
    sandbox.config.fault_slow_seconds = 1.8
    sandbox.config.fault_rates = {"slow": 1.0}
    verification_id = str(uuid.uuid4())
    try:
        send(queue, recorder, urns, verification_id)
        wait_running(store, verification_id)
        time.sleep(1.3)  # past the lease the run took: only renewal keeps it
        send(queue, recorder, urns, verification_id)  # a copy, as a redelivery brings
        outcomes = recorder.wait(1, timeout_seconds=30, settle_seconds=3)
    finally:
        sandbox.config.fault_rates = {}
    assert [o["task_urn"] for o in outcomes] == urns
    asked = [c for c in sandbox.status_calls()[before:] if urns[0] in c.asked()]
    assert len(asked) == 1, f"LinkedIn was asked {len(asked)} times for one round"
