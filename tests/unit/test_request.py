"""Bad requests are refused with a message that says what to fix."""

from __future__ import annotations

from typing import Any

import pytest

from jobops.errors import ConfigurationError, InvalidRequest
from jobops.request import parse_request
from jobops.retry import backoff_seconds, next_check_seconds
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
