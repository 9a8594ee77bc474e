"""The held set (rounds waiting in Redis on RabbitMQ): a release takes what is due,
for a while; what it leaves unconfirmed is due again; what ended meanwhile stays gone. A
real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import redis

from jobops.state import keys
from jobops.state.registry import PendingRegistry

pytestmark = pytest.mark.integration

GRACE = 100.0


@pytest.fixture
def store(redis_server: Callable[..., str]) -> redis.Redis:
    """A Redis of the test's own: the session's workers sweep the shared one, and would
    release these rounds (due in 1970) as they are being taken."""
    return redis.Redis.from_url(redis_server())


@pytest.fixture
def registry(store: redis.Redis) -> PendingRegistry:
    return PendingRegistry(store, grace_seconds=GRACE, ttl_seconds=3600)


def hold(registry: PendingRegistry, due_at: float) -> str:
    verification_id = str(uuid.uuid4())
    registry.expect(verification_id, {"task_urns": ["urn:li:simpleJobPostingTask:1"],
                                      "operation": "CREATE"}, due_at, held=True)
    return verification_id


def test_a_release_takes_only_what_is_due_and_no_other_release_takes_it_meanwhile(
        store: redis.Redis, registry: PendingRegistry) -> None:
    before = registry.count()
    due = [hold(registry, 1000.0 + i) for i in range(3)]
    later = hold(registry, 2000.0)
    assert registry.count() == (before[0] + 4, before[1] + 4)
    taken = registry.take_held(now=1002.0, until=1062.0, limit=10)
    assert sorted(taken) == sorted(due)
    assert registry.take_held(now=1050.0, until=1110.0, limit=10) == []
    assert registry.released(taken, until=1062.0, now=1003.0) == 3
    assert store.zscore(keys.PENDING, due[0]) == 1003.0 + GRACE
    assert [store.zscore(keys.HELD, i) for i in [*due, later]] == [None] * 3 + [2000.0]
    assert registry.count() == (before[0] + 4, before[1] + 4), \
        "released rounds are still pending"


def test_what_a_dead_release_took_is_due_again_after_its_hold(
        registry: PendingRegistry) -> None:
    verification_id = hold(registry, 1000.0)
    assert registry.take_held(now=1000.0, until=1060.0, limit=10) == [verification_id]
    # The release died before its messages were confirmed: nothing marked released.
    assert registry.take_held(now=1059.0, until=1119.0, limit=10) == []
    assert registry.take_held(now=1060.0, until=1120.0, limit=10) == [verification_id]
    # The first release's late word moves nothing: the round is the second one's now.
    assert registry.released([verification_id], until=1060.0, now=1061.0) == 0
    assert registry.released([verification_id], until=1120.0, now=1061.0) == 1


def test_a_round_that_ended_or_moved_on_while_taken_is_left_as_it_is(
        store: redis.Redis, registry: PendingRegistry) -> None:
    before = registry.count()
    settled, retried = hold(registry, 1000.0), hold(registry, 1000.0)
    taken = registry.take_held(now=1000.0, until=1060.0, limit=10)
    assert sorted(taken) == sorted([settled, retried])
    registry.forget(settled)  # another run's call settled it
    # Its message ran at once and retried: the next round is registered with its message.
    registry.expect(retried, {"task_urns": ["urn:li:simpleJobPostingTask:1"],
                              "operation": "CREATE", "poll_round": 1}, 1500.0)
    assert registry.released(taken, until=1060.0, now=1001.0) == 0
    assert store.zscore(keys.PENDING, settled) is None
    assert store.zscore(keys.PENDING, retried) == 1500.0 + GRACE
    assert store.zscore(keys.HELD, settled) is None
    assert store.zscore(keys.HELD, retried) is None
    assert registry.count() == (before[0] + 1, before[1] + 1)


def test_only_the_holder_of_a_round_holds_the_next_and_never_goes_back(
        store: redis.Redis, registry: PendingRegistry) -> None:
    verification_id = str(uuid.uuid4())
    round_2 = {"task_urns": ["urn:li:simpleJobPostingTask:1"], "operation": "CREATE",
               "poll_round": 2}
    store.set(keys.run_key(verification_id, 1), "running:a")
    assert registry.hold_next(verification_id, round_2, 1000.0, "running:a")
    # Round 2 ran (by b) and held round 3; then round 1's run a, back from a dead worker
    # (its lease renewed as if it still ran), ends.
    store.set(keys.run_key(verification_id, 2), "running:b")
    assert registry.hold_next(verification_id, {**round_2, "poll_round": 3}, 1010.0,
                              "running:b")
    store.set(keys.run_key(verification_id, 3), "running:c")
    assert not registry.hold_next(verification_id, round_2, 1005.0, "running:a")
    [kwargs] = registry.arguments([verification_id])
    assert kwargs is not None and kwargs["poll_round"] == 3
    assert store.zscore(keys.HELD, verification_id) == 1010.0


def test_a_run_that_lost_its_round_holds_nothing(store: redis.Redis,
                                                 registry: PendingRegistry) -> None:
    """Its lease ran out while it stalled, and another run settled the verification."""
    verification_id = str(uuid.uuid4())
    store.set(keys.run_key(verification_id, 4), f"done:by:{uuid.uuid4()}")
    assert not registry.hold_next(verification_id, {"task_urns": ["urn:li:x:1"],
                                                    "operation": "CREATE",
                                                    "poll_round": 5}, 1000.0, "running:a")
    assert registry.arguments([verification_id]) == [None]
    assert store.zscore(keys.HELD, verification_id) is None
    assert registry.count() == (0, 0)


def test_dropping_a_round_whose_arguments_are_gone_leaves_nothing_counted(
        store: redis.Redis, registry: PendingRegistry) -> None:
    before = registry.count()
    verification_id = hold(registry, 1000.0)
    store.delete(keys.pending_args_key(verification_id))
    registry.drop([verification_id])
    assert registry.count() == before
