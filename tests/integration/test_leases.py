"""Run leases on a real Redis: one run per round, and rounds settled by another run."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from jobops.state.keys import run_key
from jobops.state.leases import LeaseKeeper, RunLeases

pytestmark = pytest.mark.integration


@pytest.fixture
def leases(store: redis.Redis) -> RunLeases:
    return RunLeases(store, lease_seconds=2, done_ttl_seconds=60)


def test_a_round_runs_once_and_its_copies_learn_why(leases: RunLeases,
                                                    store: redis.Redis) -> None:
    own, other = str(uuid.uuid4()), str(uuid.uuid4())
    store.set("jobops:test:read", "value")
    first = leases.claim(own, 0, ["jobops:test:read", "jobops:test:missing"])
    assert first.granted and first.values == {"jobops:test:read": b"value",
                                              "jobops:test:missing": None}
    copy = leases.claim(own, 0)
    assert not copy.granted and not copy.done and 1.0 < copy.retry_in_seconds <= 2.2
    leases.finish(own, 0, first.holder)
    assert leases.claim(own, 0).done and leases.claim(own, 0).settled_by is None

    holder = leases.claim(other, 3).holder
    leases.finish(other, 3, holder, settled_by=own)
    settled = leases.claim(other, 3)
    assert settled.done and settled.settled_by == own


def test_claim_many_skips_rounds_running_or_done(leases: RunLeases,
                                                 store: redis.Redis) -> None:
    free, running, done = (str(uuid.uuid4()) for _ in range(3))
    assert leases.claim(running, 1).granted
    leases.finish(done, 0, leases.claim(done, 0).holder)
    store.set("jobops:test:record", "{}")
    holders, values = leases.claim_many([(free, 2), (running, 1), (done, 0)],
                                        ["jobops:test:record"])
    assert holders[0] is not None and holders[1:] == [None, None]
    assert values == {"jobops:test:record": b"{}"}
    # The round claimed for settling is held: its own message comes back later.
    assert not leases.claim(free, 2).granted
    # Released by its holder only.
    leases.release(free, 2, "running:someone-else")
    assert store.get(run_key(free, 2)) == holders[0].encode()
    leases.release(free, 2, holders[0])
    assert leases.claim(free, 2).granted


def test_an_abandoned_settling_claim_runs_out(leases: RunLeases) -> None:
    verification = str(uuid.uuid4())
    holders, _ = leases.claim_many([(verification, 0)])
    assert holders[0] is not None
    time.sleep(2.1)
    assert leases.claim(verification, 0).granted


def test_only_the_holder_renews_or_finishes_a_round(leases: RunLeases,
                                                   store: redis.Redis) -> None:
    verification = str(uuid.uuid4())
    key = run_key(verification, 0)
    mine = leases.claim(verification, 0)
    assert leases.renew({key: mine.holder}) == []
    store.set(key, "running:a-copy-that-took-over", px=2000)
    assert leases.renew({key: mine.holder}) == [key]
    leases.finish(verification, 0, mine.holder)  # refused: the copy holds the round
    assert store.get(key) == b"running:a-copy-that-took-over"
    store.delete(key)  # ran out with nobody on it: the holder takes it back
    assert leases.renew({key: mine.holder}) == []
    assert store.get(key) == mine.holder.encode()


def test_the_keeper_keeps_a_held_lease_alive_and_a_dropped_one_runs_out(
        leases: RunLeases) -> None:
    keeper = LeaseKeeper(leases, interval_seconds=0.5)
    held, dropped = str(uuid.uuid4()), str(uuid.uuid4())
    for verification in (held, dropped):
        keeper.hold(verification, 0, leases.claim(verification, 0).holder)
    keeper.drop(dropped, 0)
    deadline = time.monotonic() + 3  # longer than the 2 s lease
    while not leases.claim(dropped, 0).granted:
        assert time.monotonic() < deadline, "a dropped lease was still renewed"
        time.sleep(0.1)
    assert not leases.claim(held, 0).granted
    assert keeper.check() == set()
    keeper.drop(held, 0)


def test_a_round_in_a_newer_releases_format_is_left_to_it(leases: RunLeases,
                                                         store: redis.Redis) -> None:
    verification = str(uuid.uuid4())
    key = run_key(verification, 0)
    store.set(key, "v2:done:settled-by-a-newer-release", ex=60)
    claim = leases.claim(verification, 0)
    assert claim.unknown and not claim.granted and not claim.done
    assert 50 < claim.retry_in_seconds <= 60.2
    holders, _ = leases.claim_many([(verification, 0)])
    assert holders == [None]
    assert leases.renew({key: "running:mine"}) == [key]
    leases.finish(verification, 0, "running:mine")
    assert store.get(key) == b"v2:done:settled-by-a-newer-release"


def test_a_check_right_after_a_renewal_costs_no_round_trip_and_a_later_one_sees_a_loss(
        leases: RunLeases, store: redis.Redis) -> None:
    now = [100.0]
    renewals: list[int] = []
    renew = leases.renew

    def counted(held: dict[str, str]) -> list[str]:
        renewals.append(len(held))
        return renew(held)

    leases.renew = counted  # type: ignore[method-assign]
    keeper = LeaseKeeper(leases, interval_seconds=60, clock=lambda: now[0])
    verification = str(uuid.uuid4())
    keeper.hold(verification, 0, leases.claim(verification, 0).holder)
    assert keeper.check() == set() and renewals == []  # claimed a moment ago
    store.set(run_key(verification, 0), "running:a-copy", px=2000)
    now[0] += 61  # the keeper's thread sleeps a minute here: only the check renews
    assert keeper.check() == {run_key(verification, 0)} and renewals == [1]
    keeper.drop(verification, 0)
