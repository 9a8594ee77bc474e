"""From posting to callbacks: real Redis, real worker processes, the sandbox over HTTP."""

from __future__ import annotations

import ast
import math
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import chain

from jobops.core.urns import encode_id_param
from sandbox import SandboxState
from tests.conftest import Recorder, wait_callbacks_run
from tests.jobs import MIGRATING, job, post, task_urns
from workers.scheduling import schedule_from_answer, verify_urns

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]
SECRET = "sandbox-secret"


def by_urn(outcomes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    counts = Counter(o["task_urn"] for o in outcomes)
    assert [urn for urn, n in counts.items() if n > 1] == [], "a URN got two callbacks"
    return {o["task_urn"]: o for o in outcomes}


def verify(jobs: list[dict[str, Any]], operation: str, recorder: Recorder) -> list[str]:
    answer = post(jobs, operation)
    schedule_from_answer(answer, operation, recorder.callbacks, recorder.context)
    return task_urns(answer)


def test_hundred_job_create_with_alternate_locations(sandbox: SandboxState, recorder: Recorder
                                                      ) -> None:
    sandbox.config.in_progress_seconds = 0  # decided by the first check: one polling round
    jobs = [job(alternateLocations=["Cork, Ireland", "Galway, Ireland"] if i % 4 == 0 else None)
            for i in range(100)]
    calls_before = len(sandbox.status_calls())
    urns = verify(jobs, "CREATE", recorder)
    assert len(urns) == 150

    outcomes = by_urn(recorder.wait(len(urns)))
    assert set(outcomes) == set(urns)
    for urn, outcome in outcomes.items():
        task = sandbox.task(urn)
        assert outcome["status"] == "SUCCEEDED"
        assert outcome["operation"] == "CREATE"
        assert outcome["job_live"] is True
        assert outcome["external_job_posting_id"] == task.external_id
        assert outcome["location"] == task.location
        assert outcome["job_posting"].startswith("urn:li:jobPosting:")
        assert outcome["errors"] == [] and outcome["error_message"] is None
        assert outcome["context"] == recorder.context
    locations = Counter(o["location"] for o in outcomes.values())
    assert locations == {"Dublin, Ireland": 100, "Cork, Ireland": 25, "Galway, Ireland": 25}

    calls = sandbox.status_calls()[calls_before:]
    assert all(call.query_bytes <= 4096 for call in calls)
    calls = [call for call in calls if call.status == 200]  # not a 401 and its retry
    per_call = (4096 + 1) // (len(encode_id_param(urns[0])) + 1)
    assert len(calls) == math.ceil(len(urns) / per_call)
    # The last call's spare room may carry other verifications' URNs (coalescing).
    assert sum(call.ids for call in calls) >= len(urns)


@pytest.mark.parametrize(
    ("operation", "setup", "fields", "code", "field"),
    [
        ("CREATE", "CREATE", {}, "DUPLICATE_CREATE", "externalJobPostingId"),
        ("CREATE", None, {"description": "Too short."}, "DESCRIPTION_TOO_SHORT", "/description"),
        ("RENEW", None, {}, "RENEW_UNKNOWN_JOB", "externalJobPostingId"),
        ("UPDATE", None, {}, "UPDATE_UNKNOWN_JOB", "externalJobPostingId"),
        ("CLOSE", None, {}, "CLOSE_UNKNOWN_JOB", "externalJobPostingId"),
        ("CREATE", None, {"location": "Atlantis"}, "INVALID_FIELD", "/city"),
    ],
)
def test_each_seed_failure(sandbox: SandboxState, recorder: Recorder, operation: str,
                           setup: str | None, fields: dict[str, Any], code: str, field: str
                           ) -> None:
    posted = job(**fields)
    if setup:
        post([posted], setup)
    [urn] = verify([posted], operation, recorder)
    [outcome] = recorder.wait(1)
    assert outcome["task_urn"] == urn
    assert outcome["status"] == "FAILED"
    assert outcome["operation"] == operation
    assert outcome["error_message"] == sandbox.task(urn).final["errorMessage"]
    assert (code, field) in [(e["code"], e["field"]) for e in outcome["errors"]]
    assert all(e["resolution"] for e in outcome["errors"])
    if operation == "CREATE" and code != "DUPLICATE_CREATE":
        assert outcome["job_live"] is False


def test_invalid_fields_give_one_entry_per_field(sandbox: SandboxState, recorder: Recorder
                                                 ) -> None:
    verify([job(location="Atlantis")], "CREATE", recorder)
    [outcome] = recorder.wait(1)
    assert [e["field"] for e in outcome["errors"]] == ["/city", "/postalCode", "/state",
                                                      "/geoLocation"]


def test_both_processed_forms(sandbox: SandboxState, recorder: Recorder) -> None:
    plain = job(integrationContext=MIGRATING)
    invalid = job(integrationContext=MIGRATING, description="Too short.")
    urns = verify([plain, invalid], "CREATE", recorder)
    outcomes = by_urn(recorder.wait(2))
    assert {o["status"] for o in outcomes.values()} == {"PROCESSED"}
    plain_outcome, invalid_outcome = outcomes[urns[0]], outcomes[urns[1]]
    assert plain_outcome["errors"] == [] and plain_outcome["error_message"] is None
    assert [e["code"] for e in invalid_outcome["errors"]] == ["DESCRIPTION_TOO_SHORT"]


def test_every_operation_succeeds_with_its_meaning(sandbox: SandboxState, recorder: Recorder
                                                   ) -> None:
    posted = job()
    urns = {}
    for operation in ("CREATE", "UPDATE", "RENEW", "CLOSE"):
        [urns[operation]] = verify([posted], operation, recorder)
    outcomes = by_urn(recorder.wait(4))
    live = {op: outcomes[urn]["job_live"] for op, urn in urns.items()}
    assert live == {"CREATE": True, "UPDATE": True, "RENEW": True, "CLOSE": False}
    assert {o["status"] for o in outcomes.values()} == {"SUCCEEDED"}


def test_refused_element_fails_at_once_and_the_rest_is_verified(sandbox: SandboxState,
                                                                recorder: Recorder) -> None:
    answer = post([job(), job(title=None), job()], "CREATE")
    summary = schedule_from_answer(answer, "CREATE", recorder.callbacks, recorder.context)
    assert summary["task_urns"] == 2 and summary["refused"] == 1
    outcomes = recorder.wait(3)
    refused = [o for o in outcomes if o["task_urn"] is None]
    assert len(refused) == 1
    assert refused[0]["status"] == "FAILED" and refused[0]["element_index"] == 1
    assert [(e["code"], e["field"]) for e in refused[0]["errors"]] == [("FIELD_REQUIRED",
                                                                        "/title")]
    assert sorted(o["status"] for o in outcomes) == ["FAILED", "SUCCEEDED", "SUCCEEDED"]


def test_token_expiring_mid_run_is_replaced(sandbox: SandboxState, recorder: Recorder) -> None:
    # Tokens die after 1 s while the client is told 1800 s: every cached token goes stale.
    sandbox.config.token_lifetime_seconds = 1
    sandbox.config.advertised_expires_in_seconds = 1800
    sandbox.config.in_progress_seconds = 2.5
    sandbox.expire_tokens()
    tokens_before = sandbox.token_requests
    calls_before = len(sandbox.status_calls())
    urns = verify([job() for _ in range(5)], "CREATE", recorder)
    outcomes = by_urn(recorder.wait(5))
    assert {o["status"] for o in outcomes.values()} == {"SUCCEEDED"}
    assert set(outcomes) == set(urns)
    calls = sandbox.status_calls()[calls_before:]
    assert any(call.status == 401 for call in calls)
    assert sandbox.token_requests > tokens_before


def test_malformed_urn_sent_by_name_is_invalid_and_never_asked(
        sandbox: SandboxState, recorder: Recorder) -> None:
    from workers import app

    good = task_urns(post([job(), job()], "CREATE"))
    unknown = "urn:li:simpleJobPostingTask:00000000-0000-0000-0000-000000000000"
    smuggled = "urn:li:simpleJobPostingTask:x&ids=evil"
    calls_before = len(sandbox.status_calls())
    app.send_task("jobops.verify_job_operation", kwargs={
        "task_urns": [*good, smuggled, unknown], "operation": "CREATE",
        "callbacks": recorder.callbacks, "context": recorder.context})
    outcomes = by_urn(recorder.wait(4))
    assert outcomes[smuggled]["status"] == "INVALID"
    assert outcomes[smuggled]["errors"][0]["code"] == "INVALID_TASK_URN"
    assert outcomes[unknown]["status"] == "INVALID"
    assert "not found" in outcomes[unknown]["error_message"]
    assert [outcomes[u]["status"] for u in good] == ["SUCCEEDED", "SUCCEEDED"]
    asked = sum(call.ids for call in sandbox.status_calls()[calls_before:])
    assert "evil" not in str(sandbox.status_calls()[calls_before:])
    assert asked >= 3  # the two good URNs and the unknown one, never the smuggled one


def final_summary(log_path: Path, verification_id: str, timeout_seconds: float = 10
                  ) -> dict[str, Any]:
    """The task's return value, as the worker logged it (what Flower shows as the result)."""
    marker = f"Task jobops.verify_job_operation[{verification_id}] succeeded in "
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            if marker in line:
                summary: dict[str, Any] = ast.literal_eval(line.split("s: ", 1)[1])
                return summary
        time.sleep(0.2)
    raise AssertionError(f"no success line for {verification_id}")


def test_still_in_progress_past_the_lifespan_expires(sandbox: SandboxState, recorder: Recorder,
                                                     workers: dict[str, Path]) -> None:
    held = job()
    sandbox.hold(held["externalJobPostingId"])
    decided = job()
    answer = post([held, decided], "CREATE")
    held_urn, decided_urn = task_urns(answer)
    # The default 30-day lifespan, with the operation made 30 days minus 3 seconds ago.
    requested_at = datetime.now(UTC) - timedelta(days=30) + timedelta(seconds=3)
    started = time.monotonic()
    scheduled = schedule_from_answer(answer, "CREATE", recorder.callbacks, recorder.context,
                                     requested_at=requested_at.isoformat())
    outcomes = by_urn(recorder.wait(2, timeout_seconds=30))
    summary = final_summary(workers["jobops"], scheduled["verification_id"])
    assert summary["outcomes"] == {"SUCCEEDED": 1, "EXPIRED": 1}
    assert summary["pending"] == 0
    assert outcomes[decided_urn]["status"] == "SUCCEEDED"
    expired = outcomes[held_urn]
    assert expired["status"] == "EXPIRED"
    assert expired["errors"][0]["code"] == "STILL_IN_PROGRESS_AT_EXPIRY"
    assert expired["job_live"] is None
    assert time.monotonic() - started >= 2


def test_transient_api_failures_are_retried_not_failed(sandbox: SandboxState,
                                                       recorder: Recorder) -> None:
    sandbox.config.in_progress_seconds = 0
    calls_before = len(sandbox.status_calls())
    sandbox.script(503, {"message": "Service Unavailable", "status": 503}, times=2)
    sandbox.script(429, {"message": "throttled", "status": 429}, {"Retry-After": "1"})
    urns = verify([job() for _ in range(3)], "CREATE", recorder)
    outcomes = by_urn(recorder.wait(3))
    assert {outcomes[u]["status"] for u in urns} == {"SUCCEEDED"}
    # Each scripted fault answered a call for these URNs, and the answer that decided them
    # came after (a 401 is a stale token's, answered before any script).
    answers = [call.status for call in sandbox.status_calls()[calls_before:]
               if set(call.asked()) & set(urns) and call.status != 401]
    assert answers == [503, 503, 429, 200]


def test_pipeline_chain_into_schedule_verification(sandbox: SandboxState, recorder: Recorder
                                                   ) -> None:
    from tests.pipeline_app import app, post_jobs

    jobs = [job() for _ in range(3)]
    schedule = app.signature("jobops.schedule_verification", kwargs={
        "operation": "CREATE", "callbacks": recorder.callbacks, "context": recorder.context})
    chain(post_jobs.si(jobs, "CREATE"), schedule).apply_async()
    outcomes = recorder.wait(3)
    assert sorted(o["external_job_posting_id"] for o in outcomes) == sorted(
        j["externalJobPostingId"] for j in jobs)
    assert {o["status"] for o in outcomes} == {"SUCCEEDED"}


def test_callbacks_per_status_with_signature_options(sandbox: SandboxState, recorder: Recorder
                                                     ) -> None:
    from tests.pipeline_app import record_outcome

    ok, bad = job(), job(description="Too short.")
    callbacks = {"SUCCEEDED": dict(record_outcome.s("succeeded-extra")),
                 "FAILED": "tests.record_outcome"}
    answer = post([ok, bad], "CREATE")
    schedule_from_answer(answer, "CREATE", callbacks, recorder.context)
    outcomes = recorder.wait(2)
    extras = {o["status"]: o["_extra"] for o in outcomes}
    assert extras == {"SUCCEEDED": ["succeeded-extra"], "FAILED": []}
    assert all(i.startswith("jobops-outcome-") for i in recorder.callback_ids())


def test_duplicate_schedule_fires_each_callback_once(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis,
        workers: dict[str, Path]) -> None:
    sandbox.config.in_progress_seconds = 0
    urns = task_urns(post([job(), job()], "CREATE"))
    verify_urns(urns, "CREATE", recorder.callbacks, recorder.context)
    outcomes = recorder.wait(2, settle_seconds=0)
    again = verify_urns(urns, "CREATE", recorder.callbacks, recorder.context,
                        countdown_seconds=0)
    # The second verification ran to its end: any callback it sent is queued by now ...
    summary = final_summary(workers["jobops"], again["verification_id"])
    assert (summary["outcomes"], summary["pending"]) == ({"SUCCEEDED": 2}, 0)
    # ... and has run once everything queued before this point has.
    wait_callbacks_run(store, workers["pipeline"])
    assert len(by_urn(recorder.outcomes())) == len(outcomes) == 2
    assert len(set(recorder.callback_ids())) == len(recorder.callback_ids()) == 2


def test_no_secret_or_token_in_worker_logs(sandbox: SandboxState, recorder: Recorder,
                                           workers: dict[str, Path]) -> None:
    sandbox.config.in_progress_seconds = 0
    sandbox.expire_tokens()  # forces a refresh during this test, whatever ran before
    verify([job(), job(description="Too short.")], "CREATE", recorder)
    recorder.wait(2)
    tokens = sandbox.issued_tokens()
    assert tokens
    for path in workers.values():
        text = path.read_text(errors="replace")
        assert "verify_job_operation" in text or "record_outcome" in text
        assert SECRET not in text
        assert not [t for t in tokens if t in text]
