"""The command line as a script would use it: exit codes and --json that parses."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from jobops.core.outcomes import Operation, Status, build_outcome
from jobops.core.urns import TASK_URN_PREFIX
from jobops.state.keys import outcome_key, pending_args_key
from sandbox import SandboxState
from tests.conftest import Recorder
from tests.env import TEST_ENV
from tests.jobs import job, post, task_urns
from workers import app
from workers.runtime import runtime
from workers.scheduling import schedule_from_answer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def jobops(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jobops.cli", *args], input=stdin,
                          env={**os.environ, **TEST_ENV}, capture_output=True, text=True,
                          timeout=120)


def test_schedule_an_answer_then_watch_it_to_the_end(sandbox: SandboxState,
                                                     tmp_path: Path) -> None:
    sandbox.config.in_progress_seconds = 2
    answer = post([job(), job(description="Too short."), job(title=None)], "CREATE")
    saved = tmp_path / "answer.json"
    saved.write_text(json.dumps(answer))
    scheduled = jobops("schedule", "--answer", str(saved), "--operation", "CREATE",
                       "--countdown-seconds", "0.5", "--json")
    assert scheduled.returncode == 0, scheduled.stderr
    summary = json.loads(scheduled.stdout)
    assert (summary["task_urns"], summary["refused"]) == (2, 1)

    watched = jobops("watch", "--answer", "-", "--interval-seconds", "0.3",
                     stdin=json.dumps(answer))
    assert watched.returncode == 0, watched.stderr
    progress = [line for line in watched.stdout.splitlines() if line.startswith("[")]
    assert progress[0].split("] ")[1].startswith("0/2 done")
    assert progress[-1].split("] ")[1].startswith("2/2 done")
    assert "DESCRIPTION_TOO_SHORT" in watched.stdout

    as_json = jobops("watch", *task_urns(answer), "--json")
    assert as_json.returncode == 0
    assert {o["status"] for o in json.loads(as_json.stdout)["outcomes"]} == {"SUCCEEDED",
                                                                             "FAILED"}


def test_every_command_speaks_json(sandbox: SandboxState) -> None:
    sandbox.config.in_progress_seconds = 60
    urns = task_urns(post([job()], "CREATE"))

    status = jobops("status", *urns, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout) == {
        "results": [{"task_urn": urns[0], "status": "IN_PROGRESS"}], "error": None}

    limits = jobops("limits", "--json")
    assert limits.returncode == 0, limits.stderr
    assert {"redis", "token", "limits"} <= set(json.loads(limits.stdout))

    # Nothing recorded yet: not well (1), and the JSON says which.
    missing = jobops("outcome", *urns, "--json")
    assert missing.returncode == 1, missing.stderr
    assert json.loads(missing.stdout) == {"outcomes": [], "missing": urns}

    sandbox.script(503, {"message": "Service Unavailable", "status": 503})
    failed = jobops("status", *urns, "--json")
    assert failed.returncode == 1, failed.stderr
    answer = json.loads(failed.stdout)
    assert "503" in answer["error"]
    # Not IN_PROGRESS: nobody knows, the call failed.
    assert answer["results"] == [{"task_urn": urns[0], "status": "UNKNOWN"}]
    assert "Traceback" not in failed.stderr


def test_bad_input_exits_2_with_what_to_fix() -> None:
    bad = jobops("schedule", "--operation", "CREATE", "urn:li:simpleJobPostingTask:a&b=c")
    assert bad.returncode == 2
    assert "malformed" in bad.stderr and "nothing was scheduled" in bad.stderr
    never = jobops("watch", "urn:li:simpleJobPostingTask:never", "--timeout-seconds", "60")
    assert never.returncode == 2 and "nothing is verifying this URN" in never.stderr
    for command in ("demo", "sandbox", "status", "outcome", "schedule", "watch", "metrics",
                    "limits", "stuck", "dead-letters"):
        shown = jobops(command, "--help")
        assert shown.returncode == 0 and f"Usage: jobops {command}" in shown.stdout


def test_watch_gives_up_at_its_timeout(sandbox: SandboxState) -> None:
    sandbox.config.in_progress_seconds = 60
    urns = task_urns(post([job()], "CREATE"))
    scheduled = jobops("schedule", *urns, "--operation", "CREATE", "--countdown-seconds", "30",
                       "--json")
    assert scheduled.returncode == 0
    timeout = jobops("watch", *urns, "--timeout-seconds", "1", "--interval-seconds", "0.3")
    assert timeout.returncode == 1
    assert "1 still pending" in timeout.stderr
    assert timeout.stdout.splitlines()[0].split("] ")[1] == "0/1 done"
    # Not left polling the session's sandbox for a minute under later tests.
    for verification_id in json.loads(scheduled.stdout)["verification_ids"]:
        app.control.revoke(verification_id)
        runtime().pending.forget(verification_id)


def test_people_read_tables(sandbox: SandboxState, recorder: Recorder) -> None:
    sandbox.config.in_progress_seconds = 0.2
    answer = post([job(), job(description="Too short.")], "CREATE")
    urns = task_urns(answer)
    schedule_from_answer(answer, "CREATE", recorder.callbacks, recorder.context,
                         countdown_seconds=0.1)
    recorder.wait(2, settle_seconds=0)
    for shown in (jobops("outcome", *urns), jobops("watch", *urns)):
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        header = next(line for line in lines if "STATUS" in line)
        assert header.split() == ["STATUS", "OPERATION", "JOB", "LOCATION", "LIVE", "DETAIL",
                                  "TASK", "URN"]
        rows = {urn: next(line for line in lines if urn in line) for urn in urns}
        assert rows[urns[0]].split()[:2] == ["SUCCEEDED", "CREATE"]
        assert "DESCRIPTION_TOO_SHORT" in rows[urns[1]]
    status = jobops("status", *urns)
    assert status.returncode == 0, status.stderr
    rows = {urn: next(line for line in status.stdout.splitlines() if urn in line)
            for urn in urns}
    assert (rows[urns[0]].split()[0], rows[urns[1]].split()[0]) == ("SUCCEEDED", "FAILED")


def test_watch_a_context_tag_across_operations(sandbox: SandboxState) -> None:
    sandbox.config.in_progress_seconds = 1.5
    tag = f"batch-{uuid.uuid4().hex[:8]}"
    urns = []
    for jobs in ([job(), job()], [job(alternateLocations=["Cork, Ireland"])]):
        answer = post(jobs, "CREATE")
        urns += task_urns(answer)
        schedule_from_answer(answer, "CREATE", {"DEFAULT": "tests.record_outcome"},
                             {"test": tag, "tag": tag}, countdown_seconds=0.5)
    watched = jobops("watch", "--context-tag", f"tag={tag}", "--interval-seconds", "0.3",
                     "--json")
    assert watched.returncode == 0, watched.stderr
    assert sorted(o["task_urn"] for o in json.loads(watched.stdout)["outcomes"]) == sorted(urns)
    unknown = jobops("watch", "--context-tag", "tag=never-used")
    assert unknown.returncode == 2 and "no verification has context" in unknown.stderr


@pytest.mark.parametrize(("countdown", "fragment"), [
    ("-5", "countdown_seconds must be at least 0"),
    ("1e9", "countdown_seconds must be at most 3600"),
    ("nan", "countdown_seconds must be a number"),
])
def test_a_countdown_outside_half_the_visibility_timeout_exits_2(countdown: str,
                                                                  fragment: str) -> None:
    bad = jobops("schedule", "--operation", "CREATE", "--countdown-seconds", countdown,
                 "urn:li:simpleJobPostingTask:07ae37ab-2216-4d0f-97a0-53a516681c8f")
    assert bad.returncode == 2, bad.stdout
    assert fragment in bad.stderr


def test_watch_draws_a_bar_on_a_terminal(store: redis.Redis) -> None:
    done, waiting = (f"{TASK_URN_PREFIX}{uuid.uuid4()}" for _ in range(2))
    store.set(outcome_key(done), json.dumps(build_outcome(
        task_urn=done, status=Status.SUCCEEDED, operation=Operation.CREATE, context={},
        requested_at=time.time() - 60, decided_at=time.time(),
        result={"externalJobPostingId": "job-1"})), ex=60)
    store.set(pending_args_key(str(uuid.uuid4())), json.dumps({"task_urns": [waiting]}), ex=60)
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "jobops.cli", "watch", done, waiting,
                                "--timeout-seconds", "1", "--interval-seconds", "0.3"],
                               stdout=follower, stderr=subprocess.PIPE,
                               env={**os.environ, **TEST_ENV, "COLUMNS": "200"})
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 1 and b"1 still pending" in errors
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode())
    assert "1/2 done · 1 SUCCEEDED" in text and "━" in text
    assert "[###" not in text, "no plain progress lines on a terminal"
    assert done in text and "SUCCEEDED" in text
