"""Bad requests are refused with a message that says what to fix."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobops.core.cadence import (
    backoff_seconds,
    capped_countdown,
    max_countdown_seconds,
    next_check_seconds,
)
from jobops.core.errors import ConfigurationError, InvalidRequest
from jobops.core.request import (
    MAX_CALLBACKS_BYTES,
    parse_countdown,
    parse_idempotency_key,
    parse_request,
)
from settings import load_settings

GOOD = "urn:li:simpleJobPostingTask:07ae37ab-2216-4d0f-97a0-53a516681c8f"


def parse(**changes: Any) -> Any:
    kwargs = {"task_urns": [GOOD], "operation": "CREATE", "callbacks": {"DEFAULT": "a.b"},
              "context": {"batch": 1}}
    kwargs.update(changes)
    return parse_request(kwargs, now=0.0, strict=True)


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"task_urns": [GOOD, "urn:li:simpleJobPostingTask:x&ids=y"]}, "1 of 2 task URNs"),
    ({"task_urns": []}, "empty"),
    ({"task_urns": GOOD}, "must be a list"),
    ({"task_urns": [GOOD] * 50_001}, "at most 50000"),
    ({"operation": "DELETE"}, "CREATE, UPDATE, RENEW, CLOSE"),
    ({"callbacks": {"DONE": "a.b"}}, "is not one of"),
    ({"callbacks": {"FAILED": 3}}, "task name or a signature"),
    ({"callbacks": {"FAILED": "no spaces allowed"}}, "is not a task name"),
    ({"callbacks": {"FAILED": {"args": []}}}, "'task' name"),
    ({"callbacks": "a.b"}, "must map"),
    ({"callbacks": {"BATCH": {"task": "a.b", "batch_size": 0}}}, "from 1 to 10000; got 0"),
    ({"callbacks": {"BATCH": {"task": "a.b", "batch_size": 10_001}}}, "from 1 to 10000"),
    ({"callbacks": {"BATCH": {"task": "a.b", "batch_size": 2.5}}}, "whole number"),
    ({"callbacks": {"BATCH": {"task": "a.b", "batch_size": True}}}, "whole number"),
    ({"callbacks": {"BATCH": {"task": "a.b", "batch_size": "50"}}}, "got '50'"),
    ({"callbacks": {"BATCH": {"task": "a.b", "batch_seconds": 0}}}, "above 0 and at most 3600"),
    ({"callbacks": {"BATCH": {"task": "a.b", "batch_seconds": 3601}}}, "at most 3600"),
    ({"callbacks": {"BATCH": {"task": "a.b", "batch_seconds": float("nan")}}}, "got nan"),
    ({"callbacks": {"BATCH": {"task": "a.b", "batch_seconds": "5"}}}, "number of seconds"),
    ({"callbacks": {"BATCH": {"batch_size": 5}}}, "'task' name"),
    ({"callbacks": {"BATCH": 5}}, "task name or a signature"),
    ({"callbacks": {"FAILED": {"task": "a.b", "batch_size": 5}}},
     "callbacks[FAILED].batch_size applies to BATCH callbacks only"),
    ({"context": ["x"]}, "JSON object"),
    ({"context": {"when": object()}}, "JSON-serializable"),
    ({"context": {"blob": "x" * 20_000}}, "bytes as JSON"),
    ({"requested_at": "yesterday"}, "ISO 8601"),
    ({"requested_at": "2026-11-29T10:00:00"}, "timezone"),
])
def test_refused(changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidRequest, match=None) as caught:
        parse(**changes)
    assert fragment in str(caught.value)


def test_accepted_and_deduplicated() -> None:
    request = parse(task_urns=[GOOD, GOOD], requested_at="2026-11-29T10:00:00+00:00",
                    callbacks={"SUCCEEDED": {"task": "p.done", "options": {"queue": "q"}}})
    assert request.task_urns == (GOOD,)
    assert request.as_kwargs()["requested_at"] == "2026-11-29T10:00:00.000+00:00"


def test_batch_callbacks_accepted() -> None:
    request = parse(callbacks={"BATCH": {"task": "p.batch", "batch_size": 10_000,
                                         "batch_seconds": 0.25},
                               "DEFAULT": "p.each"})
    assert request.callbacks["BATCH"]["batch_size"] == 10_000
    assert parse(callbacks={"BATCH": "p.batch"}).callbacks == {"BATCH": "p.batch"}


def test_backoff_grows_caps_and_jitters() -> None:
    steps = [backoff_seconds(n, 60, 1800, jitter=lambda: 1.0) for n in range(8)]
    assert steps == [60, 120, 240, 480, 960, 1800, 1800, 1800]
    assert backoff_seconds(2, 60, 1800, jitter=lambda: 0.0) == 120
    assert backoff_seconds(10_000, 60, 1800, jitter=lambda: 1.0) == 1800


def test_next_check_never_passes_the_deadline() -> None:
    assert next_check_seconds(300, now=0, deadline=100) == 100
    assert next_check_seconds(300, now=100, deadline=100) is None


@pytest.mark.parametrize(("env", "fragment"), [
    ({"JOBOPS_FIRST_CHECK_SECONDS": "soon"}, "JOBOPS_FIRST_CHECK_SECONDS"),
    ({"JOBOPS_MAX_POLL_INTERVAL_SECONDS": "5000", "JOBOPS_VISIBILITY_TIMEOUT_SECONDS": "7200"},
     "VISIBILITY_TIMEOUT"),
    ({"LINKEDIN_API_URL": "api.linkedin.com"}, "LINKEDIN_API_URL"),
    ({"JOBOPS_BATCH_SIZE": "0"}, "JOBOPS_BATCH_SIZE"),
    ({"JOBOPS_BATCH_SIZE": "20000"}, "JOBOPS_BATCH_SIZE"),
    ({"JOBOPS_BATCH_SECONDS": "0"}, "JOBOPS_BATCH_SECONDS"),
    ({"JOBOPS_BATCH_SECONDS": "7200"}, "JOBOPS_BATCH_SECONDS"),
    ({"JOBOPS_TASK_LIFESPAN_DAYS": "-1"}, "JOBOPS_TASK_LIFESPAN_DAYS"),
])
def test_bad_settings_name_the_variable(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(**env)
    assert fragment in str(caught.value)


def test_secret_never_shown_in_settings_errors() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(LINKEDIN_CLIENT_SECRET="hunter2-secret", JOBOPS_QUEUE="")
    assert "hunter2-secret" not in str(caught.value)
    assert "hunter2-secret" not in repr(load_settings(LINKEDIN_CLIENT_SECRET="hunter2-secret"))


# ----- issue 12: callback options, sizes, countdowns -------------------------------------

HALF_VISIBILITY = 3600.0


def signature(**options: Any) -> dict[str, Any]:
    return {"task": "p.done", "args": [], "kwargs": {}, "options": options,
            "subtask_type": None, "immutable": False}


BAD_CALLBACKS: list[tuple[dict[str, Any], str]] = [
    ({"DEFAULT": signature(countdown="soon")}, "options.countdown must be a number"),
    ({"DEFAULT": signature(countdown=True)}, "options.countdown must be a number"),
    ({"DEFAULT": signature(countdown=-1)}, "options.countdown must be at least 0"),
    ({"DEFAULT": signature(countdown=float("nan"))}, "options.countdown must be a number"),
    ({"DEFAULT": signature(countdown=HALF_VISIBILITY + 1)},
     "options.countdown must be at most 3600"),
    ({"DEFAULT": signature(eta="tomorrow")}, "options.eta must be an ISO 8601"),
    ({"DEFAULT": signature(eta="2026-11-29T10:00:00")}, "options.eta needs a timezone"),
    ({"DEFAULT": signature(eta=1234)}, "options.eta must be an ISO 8601"),
    ({"DEFAULT": signature(eta="2999-01-01T00:00:00+00:00")},
     "options.eta must be at most 3600 s from now"),
    ({"DEFAULT": signature(expires="never")}, "options.expires must be"),
    ({"DEFAULT": signature(expires=-5)}, "options.expires must be"),
    ({"DEFAULT": signature(expires=[1])}, "options.expires must be"),
    ({"DEFAULT": signature(queue=5)}, "options.queue must be a queue name"),
    ({"DEFAULT": signature(queue="")}, "options.queue must be a queue name"),
    ({"DEFAULT": signature(queue="jobops:token")}, "options.queue may not start with"),
    ({"DEFAULT": signature(queue="_kombu.binding.celery")}, "options.queue may not start"),
    ({"DEFAULT": signature(queue="unacked")}, "options.queue 'unacked' is Celery's own"),
    ({"DEFAULT": signature(routing_key={"a": 1})}, "options.routing_key must be"),
    ({"DEFAULT": signature(priority="high")}, "options.priority must be a whole number"),
    ({"DEFAULT": signature(priority=True)}, "options.priority must be a whole number"),
    ({"DEFAULT": signature(priority=256)}, "options.priority must be a whole number"),
    ({"DEFAULT": signature(time_limit="1h")}, "options.time_limit must be a number"),
    ({"DEFAULT": signature(serializer="pickle")}, "options.serializer is not supported"),
    ({"DEFAULT": signature(task_id="mine")}, "options.task_id is not supported"),
    ({"DEFAULT": signature(link=[signature()])}, "options.link is not supported"),
    ({"DEFAULT": signature(shadow="renamed")}, "options.shadow is not supported"),
    ({"DEFAULT": signature(headers="x")}, "options.headers must be"),
    ({"DEFAULT": {**signature(), "subtask_type": "chord"}}, "subtask_type must be null"),
    ({"DEFAULT": {**signature(), "immutable": "yes"}}, "immutable must be true or false"),
    ({"DEFAULT": {**signature(), "whatever": 1}}, "callbacks[DEFAULT].whatever is not"),
    ({"BATCH": {"task": "p.b", "options": {"countdown": "x"}}},
     "callbacks[BATCH].options.countdown must be a number"),
    ({"DEFAULT": {"task": "p.done", "args": ["x" * 9_000]}},
     "callbacks are 9"),
]


@pytest.mark.parametrize("strict", [True, False], ids=["schedule", "task"])
@pytest.mark.parametrize(("callbacks", "fragment"), BAD_CALLBACKS,
                         ids=[f[:40] for _, f in BAD_CALLBACKS])
def test_callbacks_that_would_fail_at_delivery_are_refused(
        callbacks: dict[str, Any], fragment: str, strict: bool) -> None:
    kwargs = {"task_urns": [GOOD], "operation": "CREATE", "callbacks": callbacks}
    with pytest.raises(InvalidRequest) as caught:
        parse_request(kwargs, now=time.time(), strict=strict,
                      max_countdown_seconds=HALF_VISIBILITY)
    assert fragment in str(caught.value)


def test_callbacks_cap_names_itself() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse(callbacks={"DEFAULT": {"task": "p.done", "kwargs": {"blob": "x" * 9_000}}})
    assert f"more than MAX_CALLBACKS_BYTES ({MAX_CALLBACKS_BYTES})" in str(caught.value)


def test_usable_callback_options_are_accepted() -> None:
    soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    options = {"queue": "pipeline.q", "routing_key": "pipeline.q", "exchange": "pipeline",
               "priority": 9, "countdown": 30, "eta": soon, "expires": 600,
               "time_limit": 60, "soft_time_limit": 50.5, "headers": {"x": 1},
               "ignore_result": True}
    request = parse_request({"task_urns": [GOOD], "operation": "CREATE",
                             "callbacks": {"DEFAULT": signature(**options),
                                           "FAILED": {**signature(expires=soon),
                                                      "chord_size": None}}},
                            now=time.time(), strict=True, max_countdown_seconds=HALF_VISIBILITY)
    assert request.callbacks["DEFAULT"]["options"] == options


def test_context_copied_into_every_outcome_is_capped() -> None:
    context = {"blob": "x" * 1_000}
    urns = [f"urn:li:simpleJobPostingTask:{i:08d}" for i in range(20_000)]
    with pytest.raises(InvalidRequest) as caught:
        parse(task_urns=urns, context=context)
    assert "MAX_CONTEXT_COPIES_BYTES" in str(caught.value)
    assert len(parse(task_urns=urns[:1_000], context=context).task_urns) == 1_000


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"jobs": {"job-1": ["urn:li:simpleJobPostingTask:a\nurn:li:simpleJobPostingTask:b"]}},
     "jobs must map"),
    ({"jobs": {"job-1": [7]}}, "jobs must map"),
    ({"jobs": {"job-1": "urn:li:simpleJobPostingTask:a"}}, "jobs must map"),
    ({"tally": {"SUCCEEDED": -1}}, "tally must map"),
    ({"tally": {"anything": 1}}, "tally must map"),
    ({"poll_round": True}, "poll_round"),
    ({"context": {"blob": "x" * 20_000}}, "MAX_CONTEXT_BYTES"),
    ({"task_urns": [GOOD, "urn:li:simpleJobPostingTask:" + "a" * 2_000]},
     "MAX_URN_VALUE_CHARS"),
])
def test_messages_sent_by_name_are_checked_as_strictly(changes: dict[str, Any],
                                                       fragment: str) -> None:
    kwargs = {"task_urns": [GOOD], "operation": "CREATE", **changes}
    with pytest.raises(InvalidRequest) as caught:
        parse_request(kwargs, now=0.0, strict=False)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(("value", "fragment"), [
    (-1, "at least 0"), (float("nan"), "a number"), (float("inf"), "a number"),
    (True, "a number"), ("300", "a number"), (HALF_VISIBILITY + 0.5, "at most 3600"),
])
def test_countdowns_are_refused_outside_zero_to_half_the_visibility_timeout(
        value: Any, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_countdown(value, "countdown_seconds", HALF_VISIBILITY)
    assert f"countdown_seconds must be {fragment}" in str(caught.value)


def test_countdowns_inside_the_limit_are_kept() -> None:
    assert parse_countdown(0, "countdown_seconds", HALF_VISIBILITY) == 0.0
    assert parse_countdown(HALF_VISIBILITY, "countdown_seconds", HALF_VISIBILITY) == 3600.0


def test_every_retry_countdown_stays_within_half_the_visibility_timeout() -> None:
    assert max_countdown_seconds(7200) == 3600
    assert capped_countdown(5000, 3600) == 3600
    assert capped_countdown(-3, 3600) == 0
    assert capped_countdown(12.5, 3600) == 12.5


@pytest.mark.parametrize(("value", "fragment"), [
    ("", "idempotency_key must be"), (7, "idempotency_key must be"),
    ("k" * 201, "idempotency_key must be"),
])
def test_idempotency_keys_are_checked(value: Any, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_idempotency_key(value)
    assert fragment in str(caught.value)
    assert parse_idempotency_key(None) is None
    assert parse_idempotency_key("celery-task-id") == "celery-task-id"
