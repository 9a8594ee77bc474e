from __future__ import annotations

import math
import random
import uuid

import pytest

from jobops.core.urns import encode_id_param, is_task_urn, query_string, split_for_query


def urn() -> str:
    return f"urn:li:simpleJobPostingTask:{uuid.uuid4()}"


@pytest.mark.parametrize("value", [
    "urn:li:simpleJobPostingTask:07ae37ab-2216-4d0f-97a0-53a516681c8f",
    "urn:li:simpleJobPostingTask:99da65f-d870-99f0-8734-8def50fb3765",  # the seed's own
])
def test_valid_urns(value: str) -> None:
    assert is_task_urn(value)


@pytest.mark.parametrize("value", [
    "urn:li:jobPosting:123", "urn:li:simpleJobPostingTask:", "urn:li:simpleJobPostingTask:a&ids=b",
    "urn:li:simpleJobPostingTask:a=b", "urn:li:simpleJobPostingTask:a#b",
    "urn:li:simpleJobPostingTask:a b", "urn:li:simpleJobPostingTask:a\nb",
    "urn:li:simpleJobPostingTask:" + "a" * 101, 42, None,
])
def test_invalid_urns(value: object) -> None:
    assert not is_task_urn(value)


@pytest.mark.parametrize("count", [1, 53, 54, 55, 1000])
def test_equal_length_urns_meet_the_lower_bound(count: int) -> None:
    urns = [urn() for _ in range(count)]
    groups = split_for_query(urns, 4096)
    per_call = (4096 + 1) // (len(encode_id_param(urns[0])) + 1)
    assert per_call == 54
    assert len(groups) == math.ceil(count / per_call)
    assert sorted(u for g in groups for u in g) == sorted(urns)
    assert all(len(query_string(g).encode()) <= 4096 for g in groups)


def test_mixed_lengths_stay_within_one_call_of_the_bound() -> None:
    rng = random.Random(3)
    urns = [f"urn:li:simpleJobPostingTask:{i}{'x' * rng.randint(1, 96)}" for i in range(500)]
    groups = split_for_query(urns, 4096)
    total = sum(len(encode_id_param(u)) + 1 for u in urns)
    assert len(groups) <= math.ceil(total / 4097) + 1
    assert sorted(u for g in groups for u in g) == sorted(urns)
    assert all(len(query_string(g).encode()) <= 4096 for g in groups)


def test_duplicates_are_asked_once() -> None:
    one = urn()
    assert split_for_query([one, one, one]) == [[one]]


def test_a_urn_longer_than_the_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        split_for_query([urn()], 40)
