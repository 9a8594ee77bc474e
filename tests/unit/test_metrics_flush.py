"""Metrics held in a process until their flush interval, and cumulated when rendered."""

from __future__ import annotations

import uuid

import pytest
import redis

from jobops.state.metrics import Metrics, render


@pytest.fixture
def key(store: redis.Redis) -> str:
    """A hash of this test's own: the session's workers write the real one meanwhile."""
    return f"test:metrics:{uuid.uuid4().hex}"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _stored(store: redis.Redis, key: str) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in store.hgetall(key).items()}


def test_counts_wait_for_the_interval_unless_forced(store: redis.Redis, key: str) -> None:
    clock = Clock()
    metrics = Metrics(flush_seconds=1.0, clock=clock, key=key)
    metrics.add("jobops_urns_asked_total", 3)
    metrics.flush(store)
    assert _stored(store, key) == {}
    clock.now += 1.0
    metrics.flush(store)
    assert _stored(store, key) == {"jobops_urns_asked_total": 3.0}
    metrics.add("jobops_urns_asked_total", 2)
    metrics.flush(store)
    assert _stored(store, key)["jobops_urns_asked_total"] == 3.0
    metrics.flush(store, force=True)
    assert _stored(store, key)["jobops_urns_asked_total"] == 5.0


def test_latency_buckets_are_stored_once_and_rendered_cumulatively(store: redis.Redis,
                                                                  key: str) -> None:
    metrics = Metrics(key=key)
    for latency in (30, 200, 200, 10 * 86_400, 99 * 86_400):
        metrics.outcome("SUCCEEDED", "CREATE", latency)
    metrics.flush(store)
    stored = _stored(store, key)
    # One bucket series per outcome in Redis, not one per bound above it.
    assert stored['jobops_outcome_latency_seconds_bucket{le="300"}'] == 2.0
    text = render(store, {}, key)
    assert 'jobops_outcome_latency_seconds_bucket{le="60"} 1' in text
    assert 'jobops_outcome_latency_seconds_bucket{le="300"} 3' in text
    assert 'jobops_outcome_latency_seconds_bucket{le="86400"} 3' in text
    assert 'jobops_outcome_latency_seconds_bucket{le="2592000"} 4' in text
    assert 'jobops_outcome_latency_seconds_bucket{le="+Inf"} 5' in text
    assert "jobops_outcome_latency_seconds_count 5" in text
