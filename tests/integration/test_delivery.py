"""Nothing lost, nothing doubled: lost messages come back, copies of a round run once."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from jobops.request import parse_request
from sandbox import SandboxState
from tests.conftest import Recorder
from tests.jobs import job, post, task_urns
from workers import app
from workers.runtime import runtime

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def test_a_lost_message_is_re_sent_by_the_sweeper(sandbox: SandboxState, recorder: Recorder
                                                  ) -> None:
    sandbox.config.in_progress_seconds = 0
    urns = task_urns(post([job(), job()], "CREATE"))
    request = parse_request({"task_urns": urns, "operation": "CREATE",
                             "callbacks": recorder.callbacks, "context": recorder.context},
                            now=time.time(), strict=True)
    pending = runtime().pending
    verification_id = str(uuid.uuid4())
    # Registered as scheduling does, but the message itself never reaches the broker.
    pending.expect(verification_id, request.as_kwargs(),
                   due_at=time.time() - pending.grace_seconds - 1)
    outcomes = recorder.wait(2, timeout_seconds=20)
    assert sorted(o["task_urn"] for o in outcomes) == sorted(urns)
    deadline = time.monotonic() + 5
    while runtime().redis.zscore("jobops:pending", verification_id) is not None:
        assert time.monotonic() < deadline, "a finished verification stayed registered"
        time.sleep(0.1)


def test_copies_of_one_round_run_it_once(sandbox: SandboxState, recorder: Recorder,
                                         workers: dict[str, Path]) -> None:
    sandbox.config.in_progress_seconds = 0
    urns = task_urns(post([job() for _ in range(3)], "CREATE"))
    verification_id = str(uuid.uuid4())
    kwargs = {"task_urns": urns, "operation": "CREATE", "callbacks": recorder.callbacks,
              "context": recorder.context}
    calls_before = len(sandbox.status_calls())
    for _ in range(4):  # as a broker redelivering one message would
        app.send_task("jobops.verify_job_operation", kwargs=kwargs, task_id=verification_id)
    outcomes = recorder.wait(3, settle_seconds=5)
    assert len(outcomes) == 3
    assert len({o["task_urn"] for o in outcomes}) == 3
    # One round asked LinkedIn; the copies were dropped or deferred, not run.
    answered = [c for c in sandbox.status_calls()[calls_before:] if c.status == 200]
    assert len(answered) == 1
    log = workers["jobops"].read_text(errors="replace")
    assert f"verification {verification_id} round 0 ran already; dropping this copy" in log
