"""The client secret and access tokens never leave the token endpoint and jobops:token."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import redis
import requests

from jobops.state import keys
from sandbox import SandboxState
from tests.conftest import FLOWER_AUTH, Recorder
from tests.env import TEST_ENV
from tests.jobs import job, post
from workers.scheduling import schedule_from_answer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def test_no_secret_or_token_anywhere_after_a_full_run(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis,
        workers: dict[str, Path], flower: str) -> None:
    sandbox.config.in_progress_seconds = 0.5
    store.delete(keys.TOKEN)
    sandbox.expire_tokens()  # refreshes and 401s happen during this run
    sandbox.script(503)
    answer = post([job(), job(description="Too short."), job(title=None)], "CREATE")
    schedule_from_answer(answer, "CREATE", {**recorder.callbacks,
                                             "JOB_COMPLETE": "tests.record_outcome"},
                         recorder.context)
    recorder.wait(5)

    secret = TEST_ENV["LINKEDIN_CLIENT_SECRET"]
    tokens = sandbox.issued_tokens()
    assert tokens

    tasks = requests.get(flower + "/api/tasks", auth=FLOWER_AUTH, timeout=10)
    assert tasks.status_code == 200
    flower_text = tasks.text
    assert "jobops.verify_job_operation" in flower_text
    assert requests.get(flower + "/api/tasks", timeout=10).status_code == 401

    places = {"flower /api/tasks": flower_text}
    for name, path in workers.items():
        places[f"{name} worker log"] = path.read_text(errors="replace")
    for key in store.scan_iter(count=1000):
        name = key.decode()
        if name in (keys.TOKEN, keys.TOKEN_LOCK):
            continue  # where the token lives, by design
        kind = store.type(key).decode()
        if kind == "string":
            places[name] = store.get(key).decode(errors="replace")
        elif kind == "list":
            places[name] = json.dumps([v.decode(errors="replace")
                                       for v in store.lrange(key, 0, -1)])
        elif kind == "hash":
            places[name] = json.dumps({k.decode(): v.decode(errors="replace")
                                       for k, v in store.hgetall(key).items()})
    assert any(name.startswith("jobops:outcome:") for name in places)
    leaks = [(where, what) for where, text in places.items()
             for what in [secret, *tokens] if what in text]
    assert leaks == []


def test_flower_login_is_not_on_its_command_line(
        flower_server: tuple[subprocess.Popen[bytes], str]) -> None:
    process, url = flower_server
    # Anyone on the host can read a process's command line (ps); only its user the environment.
    command_line = Path(f"/proc/{process.pid}/cmdline").read_bytes().replace(b"\0", b" ")
    assert FLOWER_AUTH[1].encode() not in command_line
    assert requests.get(url + "/api/workers", auth=FLOWER_AUTH, timeout=10).status_code == 200
    assert requests.get(url + "/api/workers", timeout=10).status_code == 401
