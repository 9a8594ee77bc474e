"""Structured logs: with JOBOPS_LOG_FORMAT=json every line of ours is one JSON event."""

from __future__ import annotations

import json

import pytest

from sandbox import SandboxState
from tests.conftest import ExtraWorkers, Recorder
from tests.jobs import job, post, task_urns
from workers import app

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def test_json_logs_carry_task_id_operation_and_counts(
        sandbox: SandboxState, recorder: Recorder, jobops_worker: ExtraWorkers) -> None:
    queue = jobops_worker(concurrency=1, logfile=True, JOBOPS_LOG_FORMAT="json")
    sandbox.config.in_progress_seconds = 0
    urns = task_urns(post([job(), job(description="Too short.")], "UPDATE"))
    sent = app.send_task("jobops.verify_job_operation", queue=queue, kwargs={
        "task_urns": urns, "operation": "UPDATE", "callbacks": recorder.callbacks,
        "context": recorder.context})
    recorder.wait(2, settle_seconds=0.5)
    [log_path] = jobops_worker.logs(queue)
    lines = log_path.read_text().splitlines()
    events = []
    for number, line in enumerate(lines, 1):
        try:
            events.append(json.loads(line))
        except ValueError:
            pytest.fail(f"{log_path.name} line {number} is not JSON: {line!r}")
    assert all(isinstance(e, dict) for e in events)
    rounds = [e for e in events if e.get("event") == "verification_round"]
    assert len(rounds) == 1
    [event] = rounds
    assert event["task_id"] == sent.id
    assert event["task_name"] == "jobops.verify_job_operation"
    assert (event["operation"], event["urns"], event["decided"], event["pending"],
            event["calls"]) == ("UPDATE", 2, 2, 0, 1)
    assert all({"time", "level", "logger", "message"} <= set(e) for e in events)
