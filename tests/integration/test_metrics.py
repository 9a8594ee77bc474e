"""Prometheus metrics, summed over every worker process, move while work is done."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from jobops.dev.processes import free_port, stop
from sandbox import SandboxState
from tasks.scheduling import schedule_from_answer
from tests.conftest import Recorder
from tests.env import TEST_ENV
from tests.jobs import job, post

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


@pytest.fixture
def exporter() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "jobops.cli", "metrics", "--port",
                                str(port)], env={**os.environ, **TEST_ENV},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + 20
    while True:
        try:
            requests.get(url, timeout=1)
            break
        except requests.ConnectionError:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
    yield url
    stop(process)


def scrape(url: str) -> dict[str, float]:
    text = requests.get(url, timeout=5).text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def test_metrics_move_with_the_work(sandbox: SandboxState, recorder: Recorder,
                                    exporter: str) -> None:
    sandbox.config.in_progress_seconds = 1
    before = scrape(exporter)
    answer = post([job(), job(), job(description="Too short.")], "RENEW")
    schedule_from_answer(answer, "RENEW", recorder.callbacks, recorder.context)
    recorder.wait(3, settle_seconds=0.5)
    after = scrape(exporter)

    def moved(series: str) -> float:
        return after.get(series, 0) - before.get(series, 0)

    assert moved('jobops_linkedin_calls_total{status="200"}') >= 1
    assert moved("jobops_urns_asked_total") >= 3
    assert moved('jobops_outcomes_total{operation="RENEW",status="FAILED"}') == 3
    assert moved("jobops_outcome_latency_seconds_count") == 3
    assert moved('jobops_outcome_latency_seconds_bucket{le="60"}') == 3
    for gauge in ("jobops_pending_verifications", "jobops_pending_urns",
                  "jobops_quota_used_today", "jobops_quota_left_today"):
        assert gauge in after
    assert after["jobops_quota_used_today"] > before["jobops_quota_used_today"]
