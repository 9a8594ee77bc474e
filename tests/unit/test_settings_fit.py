"""Settings that fit together: a default gives way to what the user set, and only two
values the user set can conflict (the error names both)."""

from __future__ import annotations

import pytest

from jobops.core.errors import ConfigurationError
from settings import load_settings
from tests.env import TEST_ENV


@pytest.fixture(autouse=True)
def _defaults_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # tests.env exports the suite's own settings; these tests start from jobops' defaults.
    for name in TEST_ENV:
        monkeypatch.delenv(name, raising=False)


def timing(**env: str) -> dict[str, float]:
    s = load_settings(**env)
    return {"first": s.first_check_seconds, "poll": s.poll_interval_seconds,
            "max_poll": s.max_poll_interval_seconds, "visibility": s.visibility_timeout_seconds,
            "http": s.http_timeout_seconds, "lock": s.token_lock_seconds,
            "daily": s.daily_call_limit, "reserve": s.quota_reserve}


DEFAULTS = {"first": 300, "poll": 60, "max_poll": 1800, "visibility": 7200, "http": 30,
            "lock": 40, "daily": 300_000, "reserve": 1_000}


def test_the_defaults_are_unchanged() -> None:
    assert timing() == DEFAULTS


@pytest.mark.parametrize(("env", "moved"), [
    # The case: a lower cap used to stop the worker because the 60 s step exceeded it.
    ({"JOBOPS_MAX_POLL_INTERVAL_SECONDS": "30"}, {"max_poll": 30, "poll": 30}),
    ({"JOBOPS_POLL_INTERVAL_SECONDS": "2400"}, {"poll": 2400, "max_poll": 2400}),
    ({"JOBOPS_VISIBILITY_TIMEOUT_SECONDS": "300"},
     {"visibility": 300, "first": 150, "max_poll": 150}),
    ({"JOBOPS_VISIBILITY_TIMEOUT_SECONDS": "60"},
     {"visibility": 60, "first": 30, "max_poll": 30, "poll": 30}),
    ({"JOBOPS_FIRST_CHECK_SECONDS": "5000"}, {"first": 5000, "visibility": 10_000}),
    ({"JOBOPS_MAX_POLL_INTERVAL_SECONDS": "5000"}, {"max_poll": 5000, "visibility": 10_000}),
    ({"JOBOPS_POLL_INTERVAL_SECONDS": "4000"},
     {"poll": 4000, "max_poll": 4000, "visibility": 8000}),
    ({"JOBOPS_HTTP_TIMEOUT_SECONDS": "60"}, {"http": 60, "lock": 80}),
    ({"JOBOPS_TOKEN_LOCK_SECONDS": "20"}, {"lock": 20, "http": 15}),
    ({"JOBOPS_DAILY_CALL_LIMIT": "60"}, {"daily": 60, "reserve": 6}),
    ({"JOBOPS_DAILY_CALL_LIMIT": "5000"}, {"daily": 5000, "reserve": 500}),
    # A default that does not conflict stays where it is.
    ({"JOBOPS_MAX_POLL_INTERVAL_SECONDS": "600", "JOBOPS_HTTP_TIMEOUT_SECONDS": "5",
      "JOBOPS_DAILY_CALL_LIMIT": "20000"}, {"max_poll": 600, "http": 5, "daily": 20_000}),
])
def test_defaults_follow_the_settings_they_depend_on(env: dict[str, str],
                                                     moved: dict[str, float]) -> None:
    assert timing(**env) == {**DEFAULTS, **moved}


@pytest.mark.parametrize(("env", "named"), [
    ({"JOBOPS_POLL_INTERVAL_SECONDS": "120", "JOBOPS_MAX_POLL_INTERVAL_SECONDS": "60"},
     ["JOBOPS_POLL_INTERVAL_SECONDS=120", "JOBOPS_MAX_POLL_INTERVAL_SECONDS=60"]),
    ({"JOBOPS_FIRST_CHECK_SECONDS": "400", "JOBOPS_VISIBILITY_TIMEOUT_SECONDS": "600"},
     ["JOBOPS_FIRST_CHECK_SECONDS=400", "JOBOPS_VISIBILITY_TIMEOUT_SECONDS=600"]),
    ({"JOBOPS_MAX_POLL_INTERVAL_SECONDS": "5000", "JOBOPS_VISIBILITY_TIMEOUT_SECONDS": "7200"},
     ["JOBOPS_MAX_POLL_INTERVAL_SECONDS=5000", "JOBOPS_VISIBILITY_TIMEOUT_SECONDS=7200"]),
    ({"JOBOPS_TOKEN_LOCK_SECONDS": "20", "JOBOPS_HTTP_TIMEOUT_SECONDS": "30"},
     ["JOBOPS_TOKEN_LOCK_SECONDS=20", "JOBOPS_HTTP_TIMEOUT_SECONDS=30"]),
    ({"JOBOPS_QUOTA_RESERVE": "60", "JOBOPS_DAILY_CALL_LIMIT": "60"},
     ["JOBOPS_QUOTA_RESERVE=60", "JOBOPS_DAILY_CALL_LIMIT=60"]),
    # LinkedIn's limit is a fact, not a default to raise: the reserve alone can be wrong.
    ({"JOBOPS_QUOTA_RESERVE": "300000"},
     ["JOBOPS_QUOTA_RESERVE=300000", "JOBOPS_DAILY_CALL_LIMIT=300000 (default)"]),
])
def test_values_the_user_set_that_conflict_fail_naming_both(env: dict[str, str],
                                                           named: list[str]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(**env)
    message = str(caught.value)
    assert all(name in message for name in named), message


def test_a_conflict_through_a_default_names_the_values_set() -> None:
    # The cap follows the poll interval up, into the visibility timeout the user set: the
    # poll interval is the culprit, not the cap nobody set.
    with pytest.raises(ConfigurationError) as caught:
        load_settings(JOBOPS_POLL_INTERVAL_SECONDS="400", JOBOPS_VISIBILITY_TIMEOUT_SECONDS="600")
    message = str(caught.value)
    assert "JOBOPS_POLL_INTERVAL_SECONDS=400" in message
    assert "JOBOPS_VISIBILITY_TIMEOUT_SECONDS=600" in message
    assert "JOBOPS_MAX_POLL_INTERVAL_SECONDS" not in message
