"""Every outcome explained: job_live per operation and status, job summaries, records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from jobops.state import keys
from sandbox import SandboxState
from tests.conftest import Recorder
from tests.env import TEST_ENV
from tests.jobs import MIGRATING, job, post, task_urns
from workers.runtime import runtime
from workers.scheduling import schedule_from_answer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def run(jobs: list[dict[str, Any]], operation: str, recorder: Recorder,
        callbacks: dict[str, Any] | None = None) -> list[str]:
    answer = post(jobs, operation)
    schedule_from_answer(answer, operation, callbacks or recorder.callbacks, recorder.context)
    return task_urns(answer)


def one_outcome(jobs: list[dict[str, Any]], operation: str, recorder: Recorder
                ) -> dict[str, Any]:
    [urn] = run(jobs, operation, recorder)
    outcomes = {o["task_urn"]: o for o in recorder.wait(len(recorder.outcomes()) + 1,
                                                         settle_seconds=0.3)}
    return outcomes[urn]


# (operation, how the job is prepared, job fields, status, job_live)
MATRIX = [
    ("CREATE", [], {}, "SUCCEEDED", True),
    ("UPDATE", ["CREATE"], {}, "SUCCEEDED", True),
    ("RENEW", ["CREATE"], {}, "SUCCEEDED", True),
    ("CLOSE", ["CREATE"], {}, "SUCCEEDED", False),
    ("CREATE", [], {"description": "Too short."}, "FAILED", False),
    ("UPDATE", [], {}, "FAILED", None),  # no CREATE known: the state is unknown
    ("RENEW", [], {}, "FAILED", None),
    ("CLOSE", ["CREATE", "CLOSE"], {}, "FAILED", False),  # already closed: still not live
    ("CREATE", [], {"integrationContext": MIGRATING}, "PROCESSED", None),
    ("UPDATE", ["CREATE"], {"integrationContext": MIGRATING}, "PROCESSED", None),
    ("RENEW", ["CREATE"], {"integrationContext": MIGRATING}, "PROCESSED", None),
    ("CLOSE", ["CREATE"], {"integrationContext": MIGRATING}, "PROCESSED", None),
]


@pytest.mark.parametrize(("operation", "before", "fields", "status", "live"), MATRIX)
def test_each_operation_and_status(sandbox: SandboxState, recorder: Recorder, operation: str,
                                   before: list[str], fields: dict[str, Any], status: str,
                                   live: bool | None) -> None:
    sandbox.config.in_progress_seconds = 0.2
    posted = job(**fields)
    for earlier in before:
        # The earlier operations are verified too, as a pipeline would, in order.
        plain = {k: v for k, v in posted.items() if k != "integrationContext"}
        one_outcome([plain], earlier, recorder)
    outcome = one_outcome([posted], operation, recorder)
    assert (outcome["operation"], outcome["status"]) == (operation, status)
    assert outcome["job_live"] is live
    assert bool(outcome["errors"]) == (status == "FAILED")
    assert outcome["external_job_posting_id"] == posted["externalJobPostingId"]


def test_failed_update_takes_job_live_from_the_create(sandbox: SandboxState,
                                                      recorder: Recorder) -> None:
    sandbox.config.in_progress_seconds = 0.2
    posted, never_posted = job(), job(description="Too short.")
    create_ok = one_outcome([posted], "CREATE", recorder)
    create_failed = one_outcome([never_posted], "CREATE", recorder)
    assert (create_ok["status"], create_failed["status"]) == ("SUCCEEDED", "FAILED")

    update_after_ok = one_outcome([{**posted, "description": "Too short."}], "UPDATE", recorder)
    update_after_failed = one_outcome([{**never_posted, "description": posted["description"]}],
                                      "UPDATE", recorder)
    assert update_after_ok["status"] == "FAILED"
    assert update_after_ok["errors"][0]["code"] == "DESCRIPTION_TOO_SHORT"
    assert update_after_ok["job_live"] is True
    assert update_after_ok["job_live_from"]["task_urn"] == create_ok["task_urn"]
    assert update_after_ok["job_live_from"]["operation"] == "CREATE"
    assert update_after_failed["status"] == "FAILED"
    assert update_after_failed["errors"][0]["code"] == "UPDATE_UNKNOWN_JOB"
    assert update_after_failed["job_live"] is False
    assert update_after_failed["job_live_from"]["task_urn"] == create_failed["task_urn"]


def test_job_with_three_alternate_locations(sandbox: SandboxState, recorder: Recorder) -> None:
    sandbox.config.in_progress_seconds = 0.5
    sandbox.config.in_progress_jitter_seconds = 1.5  # locations end at different times
    posted = job(location="Dublin, Ireland",
                 alternateLocations=["Cork, Ireland", "Atlantis", "Galway, Ireland"])
    single = job()
    callbacks = {"DEFAULT": "tests.record_outcome", "JOB_COMPLETE": "tests.record_outcome"}
    urns = run([posted, single], "CREATE", recorder, callbacks)
    received = recorder.wait(len(urns) + 2, settle_seconds=1.5)
    summaries = [o for o in received if o.get("kind") == "job_summary"]
    outcomes = [o for o in received if o.get("kind") != "job_summary"]
    assert len(outcomes) == 5 and len(summaries) == 2

    mine = [o for o in outcomes if o["external_job_posting_id"] == posted["externalJobPostingId"]]
    assert sorted(o["location"] for o in mine) == sorted(
        ["Dublin, Ireland", "Cork, Ireland", "Atlantis", "Galway, Ireland"])
    [summary] = [s for s in summaries
                 if s["external_job_posting_id"] == posted["externalJobPostingId"]]
    assert summary["task_urns"] == 4 and summary["all_succeeded"] is False
    assert [entry["location"] for entry in summary["not_succeeded"]] == ["Atlantis"]
    assert summary["statuses"] == {"SUCCEEDED": 3, "FAILED": 1}
    assert summary["context"] == recorder.context
    [other] = [s for s in summaries if s is not summary]
    assert other["all_succeeded"] is True and other["task_urns"] == 1


def test_records_by_urn_and_by_job_from_python_and_cli(sandbox: SandboxState,
                                                       recorder: Recorder) -> None:
    sandbox.config.in_progress_seconds = 0.2
    posted = job(alternateLocations=["Cork, Ireland"])
    urns = run([posted], "CREATE", recorder)
    recorder.wait(2, settle_seconds=0.3)
    records = runtime().records
    assert records.outcome(urns[0])["task_urn"] == urns[0]
    by_job = records.for_job(posted["externalJobPostingId"])
    assert sorted(o["task_urn"] for o in by_job) == sorted(urns)

    env = {**os.environ, **TEST_ENV}
    cli = [sys.executable, "-m", "jobops.cli", "outcome"]
    as_json = subprocess.run([*cli, "--job", posted["externalJobPostingId"], "--json"],
                             env=env, capture_output=True, text=True, check=True)
    assert sorted(o["task_urn"] for o in json.loads(as_json.stdout)["outcomes"]) == sorted(urns)
    missing = "urn:li:simpleJobPostingTask:does-not-exist"
    table = subprocess.run([*cli, urns[0], missing], env=env, capture_output=True, text=True)
    assert table.returncode == 1
    assert "SUCCEEDED" in table.stdout and urns[0] in table.stdout
    assert missing in table.stderr
    assert runtime().redis.ttl(keys.outcome_key(urns[0])) > 29 * 86_400
