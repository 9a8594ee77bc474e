"""Redis keys: nothing sent by name becomes a key as it is (issue 12, point 9)."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from jobops.state import keys

GOOD = "urn:li:simpleJobPostingTask:07ae37ab-2216-4d0f-97a0-53a516681c8f"


def test_a_task_urn_keys_its_outcome_as_it_is() -> None:
    assert keys.outcome_key(GOOD) == f"jobops:outcome:{GOOD}"


@pytest.mark.parametrize("value", [
    "refused:0b7a2f5e-3c1d-5e8f-9a0b-1c2d3e4f5a6b:0",
    "job:" + "a" * 32,
    f"{GOOD}&ids=x",
    "urn:li:simpleJobPostingTask:*",
    "x" * 10_000,
    "",
])
def test_any_other_value_keys_its_outcome_hashed_in_its_own_namespace(value: str) -> None:
    digest = hashlib.sha256(value.encode()).hexdigest()
    assert keys.outcome_key(value) == f"jobops:outcome:invalid:{digest}"


def test_crafted_values_cannot_take_other_records_keys() -> None:
    refused = keys.refused_outcome_key(str(uuid.uuid4()), 0)
    summary = keys.job_summary_key([GOOD])
    for record in (refused, summary):
        assert keys.outcome_key(record.removeprefix("jobops:outcome:")) != record


def test_verification_ids_other_than_uuids_are_hashed() -> None:
    own = str(uuid.uuid4())
    assert keys.run_key(own, 2) == f"jobops:run:{own}:2"
    assert keys.pending_args_key(own) == f"jobops:pending:{own}"
    digest = hashlib.sha256(b"urns").hexdigest()
    assert keys.pending_args_key("urns") == f"jobops:pending:sha256:{digest}"
    assert keys.pending_args_key("urns") != keys.PENDING_URNS
    assert keys.run_key("urns", 0) == f"jobops:run:sha256:{digest}:0"
    assert keys.scheduled_key(own) == f"jobops:scheduled:{own}"
    assert keys.scheduled_key("x:y").startswith("jobops:scheduled:sha256:")
