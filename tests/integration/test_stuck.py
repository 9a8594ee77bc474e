"""A verification whose runs fail again and again: visible while it lasts, and ended at the
task lifespan's deadline like any other, with an outcome per URN saying why."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from celery import Celery

from jobops.state import keys
from sandbox import SandboxState
from tests.conftest import Recorder
from tests.env import REDIS_URL
from tests.jobs import posted_urns

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def stuck() -> tuple[int, list[dict[str, Any]]]:
    """`jobops stuck --json`: its exit code and the verifications it lists."""
    done = subprocess.run([sys.executable, "-m", "jobops.cli", "stuck", "--json"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)["stuck"]


def test_a_verification_that_keeps_failing_is_listed_then_expires_at_the_deadline(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis,
        jobops_worker: Callable[..., str]) -> None:
    # No shared statuses: nothing tells what LinkedIn answered, so at the deadline every
    # URN is reported not checked (with them, a known final status is reported as is).
    queue = jobops_worker(JOBOPS_COALESCE_POLLING="0")
    sandbox.config.in_progress_seconds = 0
    # UPDATEs of jobs LinkedIn does not know: each FAILED outcome looks up its job's state.
    urns = posted_urns(3, operation="UPDATE")
    verification_id = str(uuid.uuid4())
    # Something else wrote into jobops' namespace: every run of this verification fails
    # reading it, the same way, again and again.
    store.set(keys.job_state_key(sandbox.task(urns[1]).external_id), "not a hash")
    lifespan = timedelta(days=30)
    requested_at = datetime.now(UTC) - lifespan + timedelta(seconds=8)
    pipeline = Celery("pipeline", broker=REDIS_URL)
    errors_before = float(store.hget(keys.METRICS, "jobops_verification_errors_total") or 0)
    try:
        pipeline.send_task(
            "jobops.verify_job_operation", queue=queue, countdown=0, task_id=verification_id,
            kwargs={"task_urns": urns, "operation": "UPDATE", "callbacks": recorder.callbacks,
                    "context": recorder.context, "requested_at": requested_at.isoformat()})
    finally:
        pipeline.close()

    deadline = time.monotonic() + 8
    while True:
        code, listed = stuck()
        mine = [v for v in listed if v["verification_id"] == verification_id]
        if mine and mine[0]["failures"] >= 2:
            break
        assert time.monotonic() < deadline, f"never listed as stuck: {listed}"
        time.sleep(0.2)
    assert code == 1
    assert "WRONGTYPE" in mine[0]["last_error"] and mine[0]["operation"] == "UPDATE"
    assert mine[0]["urns"] == 3
    assert float(store.hget(keys.METRICS, "jobops_verification_errors_total") or 0) \
        >= errors_before + 2

    outcomes = recorder.wait(3, timeout_seconds=30, settle_seconds=2)
    assert Counter(o["task_urn"] for o in outcomes) == Counter(urns)
    assert {o["status"] for o in outcomes} == {"EXPIRED"}
    assert {o["errors"][0]["code"] for o in outcomes} == {"NOT_CHECKED_AT_EXPIRY"}
    assert all("WRONGTYPE" in o["errors"][0]["message"] for o in outcomes)
    _, listed = stuck()
    assert verification_id not in {v["verification_id"] for v in listed}
    assert store.zscore(keys.PENDING, verification_id) is None
