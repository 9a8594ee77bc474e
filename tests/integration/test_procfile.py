"""The Procfile under honcho: `honcho start -c worker=3` gives three workers sharing work."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from jobops.dev.processes import start_worker, wait_ready
from sandbox import SandboxState
from tests.conftest import Recorder
from tests.env import TEST_ENV
from tests.jobs import job, post, task_urns
from workers import app

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]
ROOT = Path(__file__).resolve().parents[2]


def test_honcho_starts_three_workers_that_share_the_work(
        sandbox: SandboxState, recorder: Recorder, tmp_path: Path) -> None:
    honcho = shutil.which("honcho", path=str(Path(sys.executable).parent))
    assert honcho, "honcho is a dev dependency"
    queue = f"jobops-honcho-{uuid.uuid4().hex[:8]}"
    log_path = tmp_path / "honcho.log"
    env = {**os.environ, **TEST_ENV, "JOBOPS_QUEUE": queue, "JOBOPS_WORKER_CONCURRENCY": "1",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    process = subprocess.Popen([honcho, "start", "-f", str(ROOT / "Procfile"),
                                "-c", "worker=3", "worker"], cwd=ROOT, env=env,
                               stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while log_path.read_text(errors="replace").count(" ready.") < 3:
            assert process.poll() is None and time.monotonic() < deadline, \
                log_path.read_text(errors="replace")[-2000:]
            time.sleep(0.2)
        sandbox.config.in_progress_seconds = 0
        sandbox.config.fault_slow_seconds = 0.2
        sandbox.config.fault_rates = {"slow": 1.0}  # each run takes a moment: others help
        urns = task_urns(post([job() for _ in range(24)], "CREATE"))
        for urn in urns:
            app.send_task("jobops.verify_job_operation", queue=queue, kwargs={
                "task_urns": [urn], "operation": "CREATE", "callbacks": recorder.callbacks,
                "context": recorder.context})
        outcomes = recorder.wait(24, timeout_seconds=60, settle_seconds=0.5)
        assert {o["status"] for o in outcomes} == {"SUCCEEDED"}
    finally:
        sandbox.config.fault_rates = {}
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    text = log_path.read_text(errors="replace")
    ran = re.findall(r"^\S+ (worker\.\d) +\| .*Task jobops\.verify_job_operation\[.*\] succeeded",
                     text, flags=re.MULTILINE)
    assert len(ran) == 24
    assert set(ran) == {"worker.1", "worker.2", "worker.3"}


def test_sigterm_hands_held_countdown_tasks_back(tmp_path: Path, store: redis.Redis) -> None:
    queue = f"jobops-term-{uuid.uuid4().hex[:8]}"
    log_path = tmp_path / "worker.log"
    worker = start_worker("workers", queue, {**TEST_ENV, "JOBOPS_QUEUE": queue}, log_path,
                          concurrency=1)
    wait_ready(worker, log_path)
    sent = app.send_task("jobops.verify_job_operation", queue=queue, countdown=600, kwargs={
        "task_urns": ["urn:li:simpleJobPostingTask:held"], "operation": "CREATE"})
    deadline = time.monotonic() + 20
    while f"[{sent.id}] received" not in log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, "the worker never took the countdown task"
        time.sleep(0.1)
    assert store.llen(queue) == 0  # held by the worker, not in the queue
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(30)
    held = [json.loads(m)["headers"]["id"] for m in store.lrange(queue, 0, -1)]
    assert held == [sent.id]
    store.delete(queue)
