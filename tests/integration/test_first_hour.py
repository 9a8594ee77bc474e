"""A first hour without tracebacks: what a newcomer gets wrong is one or two lines naming the
fix, and exit code 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis

from jobops.cli import main
from tests.env import TEST_ENV

pytestmark = pytest.mark.integration

URN = "urn:li:simpleJobPostingTask:07ae37ab-2216-4d0f-97a0-53a516681c8f"
PASSWORD = "first-hour-hunter2"
#: Nothing listens on port 1.
SILENT_REDIS = f"redis://:{PASSWORD}@127.0.0.1:1/0"
#: Every verb that reads the fleet's Redis, with arguments it accepts.
VERBS = [
    ["status", URN], ["status", URN, "--json"], ["outcome", URN], ["outcome", "--job", "j-1"],
    ["watch", URN], ["watch", "--context-tag", "tag=x"], ["limits"], ["limits", "--json"],
    ["stuck"], ["dead-letters"], ["schedule", "--operation", "CREATE", URN],
]


def jobops(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **TEST_ENV, **env}
    environment.pop("CELERY_BROKER_URL", None)
    return subprocess.run([sys.executable, "-m", "jobops.cli", *args], env=environment,
                          capture_output=True, text=True, timeout=60)


def assert_told(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit 2, at most two lines on stderr holding ``fragments``, and no traceback."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert 1 <= len(done.stderr.splitlines()) <= 2, done.stderr
    for fragment in fragments:
        assert fragment in done.stderr


@pytest.mark.parametrize("args", VERBS, ids=" ".join)
def test_an_unreachable_redis_is_named_without_its_password(args: list[str]) -> None:
    done = jobops(*args, REDIS_URL=SILENT_REDIS)
    assert_told(done, "Redis at redis://:***@127.0.0.1:1/0 is unreachable (Connection refused)",
                "start Redis or set REDIS_URL")
    assert PASSWORD not in done.stdout + done.stderr


@pytest.mark.parametrize("args", [*VERBS, ["metrics", "--port", "0"]], ids=" ".join)
def test_a_bad_setting_is_named(args: list[str]) -> None:
    done = jobops(*args, JOBOPS_POLL_INTERVAL_SECONDS="abc")
    assert_told(done, "JOBOPS_POLL_INTERVAL_SECONDS", "got 'abc'")


def test_the_demo_names_a_bad_setting_before_starting_anything() -> None:
    done = jobops("demo", JOBOPS_CALLS_PER_SECOND="abc")
    assert_told(done, "JOBOPS_CALLS_PER_SECOND", "got 'abc'")


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("verb", ["metrics", "sandbox"])
def test_a_port_in_use_is_named(verb: str, taken_port: int) -> None:
    done = jobops(verb, "--port", str(taken_port))
    assert_told(done, f"port {taken_port} on 127.0.0.1 is in use", "pick another with --port")


def test_status_refuses_a_malformed_urn_before_anything_else() -> None:
    # Neither Redis nor LinkedIn answers: the URN is judged before either is asked.
    done = jobops("status", URN, "urn:li:simpleJobPostingTask:a&b=c", "--json",
                  REDIS_URL=SILENT_REDIS, LINKEDIN_API_URL="http://127.0.0.1:1")
    assert_told(done, "'urn:li:simpleJobPostingTask:a&b=c' has characters other than",
                "nothing was asked")
    assert done.stdout == ""


def test_watch_refuses_urns_nothing_verifies(store: redis.Redis) -> None:
    done = jobops("watch", URN, URN.replace("07ae", "17ae"), "--timeout-seconds", "60")
    assert_told(done, "nothing is verifying these 2 URNs", "jobops schedule")


def test_usage_errors_and_help_from_python() -> None:
    assert main(["--help"]) == 0
    assert main(["status"]) == 2
    assert main(["outcome", URN, "--job", "j-1"]) == 2
    done = jobops("outcome")
    assert_told(done, "jobops outcome: give task URNs or --job", "jobops outcome --help")
