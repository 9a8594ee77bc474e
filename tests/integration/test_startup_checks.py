"""A worker refuses to start where it would lose state: a Redis that may evict keys, or no
LinkedIn credentials. Real worker processes, each Redis of the test's own."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobops.dev.processes import start_worker, stop
from tests.env import TEST_ENV

pytestmark = pytest.mark.integration
PASSWORD = "evict-test-hunter2"


@pytest.fixture
def worker_log(tmp_path: Path) -> Iterator[Callable[..., tuple[int | None, str]]]:
    """Start a jobops worker; return its exit code (None: it started) and its log."""
    started = []

    def run(**env: str) -> tuple[int | None, str]:
        queue = f"jobops-start-{uuid.uuid4().hex[:8]}"
        log_path = tmp_path / f"{queue}.log"
        process = start_worker("workers", queue, {**TEST_ENV, "JOBOPS_QUEUE": queue, **env},
                               log_path, concurrency=1)
        started.append(process)
        deadline = time.monotonic() + 60
        while process.poll() is None and " ready." not in log_path.read_text(errors="replace"):
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")[-2000:]
            time.sleep(0.1)
        return process.poll(), log_path.read_text(errors="replace")

    yield run
    for process in started:
        stop(process)


def test_a_redis_that_may_evict_stops_the_worker(
        redis_server: Callable[..., str], worker_log: Callable[..., tuple[int | None, str]]
        ) -> None:
    url = redis_server("--maxmemory-policy", "allkeys-lru", password=PASSWORD)
    code, log = worker_log(REDIS_URL=url)
    assert code not in (None, 0), log[-2000:]
    assert "maxmemory-policy allkeys-lru" in log
    assert "maxmemory-policy noeviction" in log and "JOBOPS_ALLOW_EVICTION=1" in log
    assert url.replace(PASSWORD, "***") in log
    assert PASSWORD not in log


def test_allowed_eviction_starts_with_a_warning(
        redis_server: Callable[..., str], worker_log: Callable[..., tuple[int | None, str]]
        ) -> None:
    url = redis_server("--maxmemory-policy", "volatile-lru", password=PASSWORD)
    code, log = worker_log(REDIS_URL=url, JOBOPS_ALLOW_EVICTION="1")
    assert code is None, log[-2000:]
    [warning] = [line for line in log.splitlines() if "maxmemory-policy volatile-lru" in line]
    assert "WARNING" in warning
    assert PASSWORD not in log


def test_a_redis_that_hides_its_config_starts_with_a_warning(
        redis_server: Callable[..., str], worker_log: Callable[..., tuple[int | None, str]]
        ) -> None:
    # Managed Redis services often refuse CONFIG GET: the worker cannot tell, so it warns.
    url = redis_server("--maxmemory-policy", "allkeys-lru", "--rename-command", "CONFIG", "")
    code, log = worker_log(REDIS_URL=url)
    assert code is None, log[-2000:]
    [warning] = [line for line in log.splitlines() if "could not read maxmemory-policy" in line]
    assert "WARNING" in warning and "noeviction" in warning


def test_no_credentials_stops_the_worker(
        worker_log: Callable[..., tuple[int | None, str]]) -> None:
    code, log = worker_log(LINKEDIN_CLIENT_ID="", LINKEDIN_CLIENT_SECRET="")
    assert code not in (None, 0), log[-2000:]
    assert "LINKEDIN_CLIENT_ID" in log and "LINKEDIN_CLIENT_SECRET" in log


@pytest.mark.parametrize("command", [["worker", "--pool=solo"], ["flower", "--port=0"]])
def test_a_bad_setting_is_the_first_thing_a_worker_prints(command: list[str]) -> None:
    env = {**TEST_ENV, "JOBOPS_POLL_INTERVAL_SECONDS": "every minute"}
    done = subprocess.run([sys.executable, "-m", "celery", "-A", "workers", *command],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert lines[0] == "jobops: jobops settings are invalid:", done.stderr[-2000:]
    assert "JOBOPS_POLL_INTERVAL_SECONDS" in lines[1] and "every minute" in lines[1]
    assert "Traceback" not in done.stderr
    assert "Unable to load celery application" not in done.stderr
