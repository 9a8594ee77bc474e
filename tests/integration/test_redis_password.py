"""A Redis password never shows: not in `jobops limits`, plain or JSON, nor in the demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from jobops.dev.processes import free_port
from tests.env import TEST_ENV

pytestmark = pytest.mark.integration
PASSWORD = "redis-test-hunter2"


def test_limits_names_the_redis_it_reads_without_its_password(
        redis_server: Callable[..., str]) -> None:
    url = redis_server(password=PASSWORD)
    shown = url.replace(PASSWORD, "***")
    for extra in ([], ["--json"]):
        answer = subprocess.run([sys.executable, "-m", "jobops.cli", "limits", *extra],
                                env={**os.environ, **TEST_ENV, "REDIS_URL": url},
                                capture_output=True, text=True, timeout=60)
        assert answer.returncode == 0, answer.stderr
        assert PASSWORD not in answer.stdout + answer.stderr
        if extra:
            assert json.loads(answer.stdout)["redis"] == shown
        else:
            assert f"redis   {shown}" in answer.stdout.splitlines()


def test_demo_shows_the_redis_it_uses_without_its_password(
        redis_server: Callable[..., str]) -> None:
    url = redis_server(password=PASSWORD)
    # No time for outcomes: the demo prints where it runs, starts its workers, and gives up.
    answer = subprocess.run([sys.executable, "-m", "jobops.cli", "demo", "--timeout-seconds",
                             "0"], env={**os.environ, "REDIS_URL": url},
                            capture_output=True, text=True, timeout=120)
    assert "timed out" in answer.stdout, answer.stdout + answer.stderr
    assert f"Redis at {url.replace(PASSWORD, '***')}" in answer.stdout
    assert PASSWORD not in answer.stdout + answer.stderr


def test_demo_names_a_silent_redis_without_its_password() -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    # Without redis-server on the PATH the demo stops after saying which Redis was silent.
    answer = subprocess.run([sys.executable, "-m", "jobops.cli", "demo"],
                            env={**os.environ, "REDIS_URL": url, "PATH": "/nonexistent"},
                            capture_output=True, text=True, timeout=60)
    assert answer.returncode == 2, answer.stdout + answer.stderr
    assert f"no Redis at {url.replace(PASSWORD, '***')}" in answer.stdout
    assert PASSWORD not in answer.stdout + answer.stderr
