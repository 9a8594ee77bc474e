"""Prometheus metrics, summed over every worker process, move while work is done; the
exposition is prometheus_client's own, and a scrape while Redis is down gets 503."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import requests
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from jobops.dev.processes import free_port, redis_answers, stop
from jobops.state import keys
from jobops.state.metrics import COUNTERS, GAUGES, LATENCY, LATENCY_BUCKETS_SECONDS, Metrics
from sandbox import SandboxState
from tests.conftest import Recorder
from tests.env import TEST_ENV
from tests.jobs import job, post, task_urns
from workers import app
from workers.scheduling import schedule_from_answer

pytestmark = pytest.mark.integration

Exporter = Callable[..., str]


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[Exporter]:
    """Start ``jobops metrics`` with the test settings and ``env``; returns its URL once it
    answers. Its stderr goes to ``tmp_path / "metrics-<port>.err"``."""
    started = []

    def start(**env: str) -> str:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "jobops.cli", "metrics", "--port", str(port)],
            env={**os.environ, **TEST_ENV, **env}, stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"metrics-{port}.err").open("wb"), start_new_session=True)
        started.append(process)
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(url, timeout=1)
                return url
            except requests.ConnectionError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)

    yield start
    for process in started:
        stop(process)


def scrape(url: str) -> dict[str, float]:
    text = requests.get(url, timeout=5).text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


@pytest.mark.usefixtures("workers")
def test_metrics_move_with_the_work(sandbox: SandboxState, recorder: Recorder,
                                    exporter: Exporter) -> None:
    url = exporter()
    sandbox.config.in_progress_seconds = 1
    before = scrape(url)
    answer = post([job(), job(), job(description="Too short.")], "RENEW")
    schedule_from_answer(answer, "RENEW", recorder.callbacks, recorder.context)
    recorder.wait(3, settle_seconds=0.5)
    after = scrape(url)

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


def test_the_exposition_has_every_family_in_order_before_anything_happened(
        redis_server: Callable[..., str], exporter: Exporter) -> None:
    url = redis_server()
    exported = exporter(REDIS_URL=url)
    answer = requests.get(exported, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == CONTENT_TYPE_LATEST
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    # Counters are named without _total by the parser; their samples keep it.
    counters = {name.removesuffix("_total") for name in COUNTERS}
    assert counters | {LATENCY} | set(GAUGES) <= set(families)
    assert all(f.documentation for f in families.values()), "HELP on every metric"
    assert {families[name].type for name in counters} == {"counter"}
    outcomes = {(s.labels["operation"], s.labels["status"]): s.value
                for s in families["jobops_outcomes"].samples}
    assert len(outcomes) == 4 * 5 and set(outcomes.values()) == {0.0}
    assert {s.labels["reason"] for s in families["jobops_pauses"].samples} == {
        "throttled", "retry_after", "daily_limit", "token_refused", "request_refused"}
    assert [s.value for s in families["jobops_urns_asked"].samples] == [0.0]
    histogram = families[LATENCY]
    assert histogram.type == "histogram"
    bounds = [s.labels["le"] for s in histogram.samples if s.name.endswith("_bucket")]
    assert bounds == [*map(str, LATENCY_BUCKETS_SECONDS), "+Inf"]
    assert {s.value for s in histogram.samples} == {0.0}
    assert families["jobops_pending_verifications"].type == "gauge"

    # Counts in: cumulative buckets, in numeric order (not text order: "+Inf" < "1800").
    metrics = Metrics(background=False)
    for latency in (30, 200, 200, 10 * 86_400, 99 * 86_400):
        metrics.outcome("SUCCEEDED", "CREATE", latency)
    metrics.flush(redis.Redis.from_url(url))
    samples = [s for f in text_string_to_metric_families(requests.get(exported, timeout=5).text)
               if f.name == LATENCY for s in f.samples]
    buckets = [(s.labels["le"], s.value) for s in samples if s.name.endswith("_bucket")]
    assert buckets == [("60", 1), ("300", 3), ("600", 3), ("1800", 3), ("3600", 3),
                       ("21600", 3), ("86400", 3), ("604800", 3), ("2592000", 4), ("+Inf", 5)]
    assert {s.name: s.value for s in samples if not s.name.endswith("_bucket")} == {
        f"{LATENCY}_count": 5, f"{LATENCY}_sum": 30 + 400 + 109 * 86_400}


def test_a_scrape_gets_503_while_redis_is_down_and_200_once_it_is_back(
        tmp_path: Path, exporter: Exporter) -> None:
    binary = shutil.which("redis-server")
    assert binary is not None
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    def start_redis() -> subprocess.Popen[bytes]:
        process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                                   stdout=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while not redis_answers(url):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        return process

    own = start_redis()
    try:
        exported = exporter(REDIS_URL=url)
        assert requests.get(exported, timeout=5).status_code == 200
        stop(own)
        down = requests.get(exported, timeout=5)
        assert down.status_code == 503
        assert f"Redis at {url} is unreachable" in down.text
        assert len(down.text.splitlines()) == 1
        own = start_redis()
        back = requests.get(exported, timeout=5)
        assert back.status_code == 200 and "jobops_outcomes_total" in back.text
    finally:
        stop(own)
    errors = (tmp_path / f"metrics-{exported.split(':')[2].split('/')[0]}.err").read_text()
    assert "Traceback" not in errors
    went, came = errors.splitlines()
    assert went.startswith(f"jobops metrics: Redis at {url} is unreachable (")
    assert "start Redis or set REDIS_URL" in went
    assert came == f"jobops metrics: Redis at {url} answers again"


def test_an_exporter_started_without_redis_answers_503(tmp_path: Path,
                                                       exporter: Exporter) -> None:
    exported = exporter(REDIS_URL="redis://:hunter2@127.0.0.1:1/0")
    down = requests.get(exported, timeout=5)
    assert down.status_code == 503
    assert "Redis at redis://:***@127.0.0.1:1/0 is unreachable" in down.text
    assert "hunter2" not in down.text
    errors = next(tmp_path.glob("metrics-*.err")).read_text()
    assert "Traceback" not in errors and "hunter2" not in errors
    assert len(errors.splitlines()) == 1 and "start Redis or set REDIS_URL" in errors


@pytest.mark.usefixtures("workers")
def test_an_idle_worker_writes_its_last_counts_within_the_flush_interval(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis,
        jobops_worker: Callable[..., str]) -> None:
    flush_seconds = 4.0
    # One process: its first run is its first flush interval, so the run holds its counts.
    queue = jobops_worker(concurrency=1, JOBOPS_METRICS_FLUSH_SECONDS=str(flush_seconds))
    sandbox.config.in_progress_seconds = 0

    def counted() -> float:
        """CLOSE outcomes counted in Redis, whatever their status."""
        return sum(float(value) for series, value in store.hgetall(keys.METRICS).items()
                   if series.startswith(b'jobops_outcomes_total{operation="CLOSE",'))

    before = counted()
    urns = task_urns(post([job()], "CLOSE"))
    app.send_task("jobops.verify_job_operation", queue=queue, task_id=str(uuid.uuid4()),
                  kwargs={"task_urns": urns, "operation": "CLOSE",
                          "callbacks": recorder.callbacks, "context": recorder.context})
    recorder.wait(1, settle_seconds=0)
    delivered_at = time.monotonic()
    assert counted() == before, "the run's own flush waits for the interval"
    # No further task: the worker's background flush writes it.
    while counted() == before:
        assert time.monotonic() - delivered_at < flush_seconds + 2, "never written"
        time.sleep(0.05)
    assert counted() == before + 1
