"""Telling a lost round from a late one: the verdict."""

from __future__ import annotations

from jobops.state.registry import MIN_UNSEEN_SECONDS, judge


def test_a_round_with_a_message_in_the_broker_is_waiting_whatever_came_before() -> None:
    verdict = judge(["a", "b"], held={"a", "b"}, unseen_since={"a": 0.0}, now=100.0)
    assert verdict.waiting == ["a", "b"]
    assert verdict.lost == [] and verdict.unseen_since == {}


def test_one_search_that_finds_nothing_is_no_proof() -> None:
    verdict = judge(["a"], held=set(), unseen_since={}, now=100.0)
    assert verdict.lost == [] and verdict.waiting == []
    assert verdict.unseen_since == {"a": 100.0}


def test_two_searches_apart_that_find_nothing_are() -> None:
    verdict = judge(["a", "b"], held=set(), now=100.0,
                    unseen_since={"a": 100.0 - MIN_UNSEEN_SECONDS, "b": 99.9})
    assert verdict.lost == ["a"]
    # Found unseen a moment ago, by a sweep that overlapped this one: not yet.
    assert verdict.unseen_since == {"b": 99.9}
