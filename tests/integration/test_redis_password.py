"""A Redis password never shows: not in `jobops limits`, plain or JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

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
