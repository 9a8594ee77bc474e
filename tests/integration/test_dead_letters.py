"""What no worker can run is set aside, not the end of the worker: bytes that are not JSON,
JSON that is not a message, a task nobody has; `jobops dead-letters` shows them."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobops.state.dead_letters import DeadLetters
from sandbox import SandboxState
from tests.conftest import wait_for_line
from tests.fleet import PASSWORD, Fleet, running_fleet, wait_until
from tests.jobs import job, post, task_urns

pytestmark = pytest.mark.integration


def envelope(body: bytes, headers: dict[str, str], queue: str) -> bytes:
    """A kombu message as a pipeline's producer would push it onto ``queue``."""
    return json.dumps({
        "body": base64.b64encode(body).decode(), "content-encoding": "utf-8",
        "content-type": "application/json", "headers": headers,
        "properties": {"delivery_tag": str(uuid.uuid4()), "body_encoding": "base64",
                       "delivery_info": {"exchange": "", "routing_key": queue}}}).encode()


RAW = [b"not json at all", b"\xff\xfe\x00\x81 binary", b'{"not": "a celery message"}',
       b"[1, 2, 3]"]


@pytest.fixture
def fleet(tmp_path: Path, store: redis.Redis, sandbox: SandboxState) -> Iterator[Fleet]:
    yield from running_fleet(tmp_path, store)


def dead_letters(fleet: Fleet, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jobops.cli", "dead-letters", *extra],
                          env={**os.environ, **fleet.env}, capture_output=True, text=True,
                          timeout=60)


def test_a_worker_sets_aside_what_it_cannot_run_and_goes_on(
        fleet: Fleet, sandbox: SandboxState) -> None:
    sandbox.config.in_progress_seconds = 0
    reader, reader_log = fleet.worker("reader", concurrency=1)
    queue = fleet.env["JOBOPS_QUEUE"]
    # Celery refuses this one with a KeyError, which kombu counts as a lost connection:
    # the worker reconnected, got it back and failed again, for ever.
    no_task_id = envelope(b"[[], {}, {}]", {"task": "jobops.verify_job_operation"}, queue)
    undecodable = envelope(b"not json", {"task": "jobops.verify_job_operation", "id": "x"},
                           queue)
    garbage = [*RAW, no_task_id, undecodable]
    broker = fleet.broker()
    for raw in garbage:
        broker.lpush(queue, raw)
    # A well-formed message for a task this worker does not have.
    fleet.sender.send_task("pipeline.not_here", queue=queue, kwargs={"x": 1})
    wait_until(lambda: broker.llen("jobops:dead-letters") == len(garbage) + 1,
               "every unreadable message set aside")

    fleet.consumer()
    urns = task_urns(post([job()], "CREATE"))
    fleet.verify(urns)
    fleet.wait_for_outcomes(urns, timeout_seconds=30)
    assert reader.poll() is None
    log = reader_log.read_text(errors="replace")
    assert "Unrecoverable error" not in log and PASSWORD not in log
    assert "Connection to broker lost" not in log
    errors = wait_for_line(reader_log, "set aside a message from queue",
                           count=len(garbage) + 1)
    assert all("ERROR" in line for line in errors)
    assert repr(b"not json at all") in log

    shown = dead_letters(fleet, "--json")
    assert shown.returncode == 1, shown.stderr
    assert PASSWORD not in shown.stdout + shown.stderr
    letters = json.loads(shown.stdout)["dead_letters"]
    by_body = {base64.b64decode(entry["body_base64"]): entry for entry in letters}
    assert set(garbage) <= set(by_body)
    for raw in garbage:
        assert by_body[raw]["size"] == len(raw) and by_body[raw]["queue"] == queue
        assert by_body[raw]["at"] > 0 and not by_body[raw]["truncated"]
    assert by_body[b"not json at all"]["reason"].startswith("not JSON")
    assert by_body[b'{"not": "a celery message"}']["reason"].startswith("not a message kombu")
    assert "KeyError: 'id'" in by_body[no_task_id]["reason"]
    assert by_body[undecodable]["reason"].startswith("body not decodable")
    [refused] = [entry for raw, entry in by_body.items() if raw not in garbage]
    assert "pipeline.not_here" in refused["reason"]

    plain = dead_letters(fleet)
    assert plain.returncode == 1
    assert f"queue {queue}  15 bytes  not JSON" in plain.stdout
    assert repr(b"\xff\xfe\x00\x81 binary") in plain.stdout

    cleared = dead_letters(fleet, "--clear")
    assert cleared.returncode == 1 and repr(b"not json at all") in cleared.stdout
    assert dead_letters(fleet).returncode == 0


def test_dead_letters_are_capped_newest_first(fleet: Fleet) -> None:
    letters = DeadLetters(fleet.broker(), cap=3)
    for n in range(5):
        letters.add("q", f"garbage {n}".encode(), "not JSON")
    assert letters.count() == 3
    assert [base64.b64decode(e["body_base64"]) for e in letters.listed()] == \
        [b"garbage 4", b"garbage 3", b"garbage 2"]
    big = DeadLetters(fleet.broker()).add("q", b"x" * 100_000, "not JSON")
    assert big == 4
    [newest] = DeadLetters(fleet.broker()).listed(1)
    assert newest["size"] == 100_000 and newest["truncated"]
    assert len(base64.b64decode(newest["body_base64"])) == 64 * 1024
