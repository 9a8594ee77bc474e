"""Flower tells the story: names, readable arguments, retry reasons, result summaries."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from sandbox import SandboxState
from tests.conftest import FLOWER_AUTH, Recorder
from tests.jobs import job, post, task_urns
from workers.scheduling import schedule_from_answer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def flower_task(flower: str, task_id: str, state: str, timeout_seconds: float = 20
                ) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_seconds
    while True:
        answer = requests.get(f"{flower}/api/task/info/{task_id}", auth=FLOWER_AUTH,
                              timeout=5)
        if answer.status_code == 200 and answer.json().get("state") == state:
            info: dict[str, Any] = answer.json()
            return info
        assert time.monotonic() < deadline, f"Flower never showed {task_id} as {state}"
        time.sleep(0.3)


def test_flower_shows_what_a_verification_is_doing(sandbox: SandboxState, recorder: Recorder,
                                                   flower: str) -> None:
    sandbox.config.in_progress_seconds = 1.5  # the first check finds them IN_PROGRESS
    answer = post([job(), job(), job(), job()], "CREATE")
    urns = task_urns(answer)
    scheduled = schedule_from_answer(answer, "CREATE", recorder.callbacks,
                                     {**recorder.context, "batch": "b-17"})
    verification_id = scheduled["verification_id"]

    retried = flower_task(flower, verification_id, "RETRY")
    assert retried["name"] == "jobops.verify_job_operation"
    assert "URNs still IN_PROGRESS, next check in" in retried["exception"]
    recorder.wait(4, settle_seconds=0)
    done = flower_task(flower, verification_id, "SUCCESS")
    kwargs = done["kwargs"]
    assert kwargs.startswith("CREATE · ")
    assert "URNs" in kwargs and '"batch": "b-17"' in kwargs
    assert urns[0].rsplit(":", 1)[-1][:8] in kwargs
    assert "'SUCCEEDED': 4" in done["result"]
