"""Coalesced polling: single-job operations share calls, and every outcome still fires once."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import pytest

from jobops.urns import encode_id_param
from sandbox import SandboxState
from tests.conftest import Recorder
from tests.jobs import posted_urns
from workers import app
from workers.runtime import runtime

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


@pytest.mark.parametrize("coalesce", ["1", "0"])
def test_single_job_operations_share_their_calls(
        sandbox: SandboxState, recorder: Recorder, jobops_worker: Callable[..., str],
        coalesce: str) -> None:
    queue = jobops_worker(JOBOPS_COALESCE_POLLING=coalesce, JOBOPS_STATUS_FRESH_SECONDS="30")
    sandbox.config.in_progress_seconds = 0
    urns = posted_urns(400)
    before = len(sandbox.status_calls())
    # As scheduling does: each URN registered as due, one verification per job.
    runtime().share.expect(urns, time.time() + 2)
    for urn in urns:
        app.send_task("jobops.verify_job_operation", queue=queue, countdown=2, kwargs={
            "task_urns": [urn], "operation": "CREATE", "callbacks": recorder.callbacks,
            "context": recorder.context})
    outcomes = recorder.wait(400, timeout_seconds=90, settle_seconds=1)
    assert sorted(o["task_urn"] for o in outcomes) == sorted(urns)
    assert {o["status"] for o in outcomes} == {"SUCCEEDED"}
    calls = len(sandbox.status_calls()) - before
    if coalesce == "1":
        per_call = (4096 + 1) // (len(encode_id_param(urns[0])) + 1)
        ids = [c.ids for c in sandbox.status_calls()[before:]]
        assert calls <= math.ceil(400 / 40), f"{calls} calls for 400 URNs: {ids}"
        assert calls >= math.ceil(400 / per_call)
    else:
        assert calls == 400
