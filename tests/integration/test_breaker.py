"""The fleet's breaker on real Redis: one pause for every process, one probe per step."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import redis

from jobops.core.errors import Paused
from jobops.core.pauses import (
    DAILY_LIMIT,
    DAILY_RECHECK_SECONDS,
    MIDNIGHT_SPREAD_SECONDS,
    REQUEST_REFUSED,
    THROTTLED,
)
from jobops.state import keys
from jobops.state.limits import Limiter

pytestmark = pytest.mark.integration


@pytest.fixture
def fleet(store: redis.Redis) -> Iterator[Callable[..., Limiter]]:
    """Limiters as separate processes would hold them, on the fleet's clock."""
    def limiter(**overrides: object) -> Limiter:
        options: dict[str, object] = dict(
            calls_per_second=1000, daily_limit=300_000, reserve=1000, max_wait_seconds=1,
            allow_clock_override=True, first_pause_seconds=1, max_pause_seconds=4,
            probe_hold_seconds=10, jitter=lambda: 1.0)
        options.update(overrides)
        return Limiter(store, **options)  # type: ignore[arg-type]

    store.delete(keys.BLOCKED_UNTIL, keys.BREAKER, keys.CLOCK_OFFSET)
    yield limiter
    store.delete(keys.BLOCKED_UNTIL, keys.BREAKER, keys.CLOCK_OFFSET)


def move_clock(store: redis.Redis, seconds: float) -> None:
    store.incrby(keys.CLOCK_OFFSET, int(seconds * 1000))


def move_to(store: redis.Redis, instant: datetime) -> None:
    now_s, micros = store.time()
    store.set(keys.CLOCK_OFFSET, int(instant.timestamp() * 1000) - (now_s * 1000
                                                                      + micros // 1000))


def test_a_trip_pauses_every_process_and_one_probe_ends_each_step(
        store: redis.Redis, fleet: Callable[..., Limiter]) -> None:
    one, other = fleet(), fleet()
    first = one.trip(REQUEST_REFUSED, "Unsupported API version")
    assert first.new_step and first.wait_seconds == pytest.approx(1, abs=0.01)
    again = other.trip(REQUEST_REFUSED, "Unsupported API version")
    assert not again.new_step  # many processes failing together open one step
    for limiter in (one, other):
        with pytest.raises(Paused):
            limiter.acquire("a")
    move_clock(store, 1.1)
    assert one.acquire("holder-1").probe
    with pytest.raises(Paused):  # the rest of the fleet waits for the probe
        other.acquire("holder-2")
    assert one.acquire("holder-1").probe  # the probe's retry with a fresh token
    second = one.trip(REQUEST_REFUSED, "Unsupported API version")  # refused again
    assert second.new_step and second.step == 2 and second.wait_seconds == pytest.approx(2)
    move_clock(store, 2.1)
    assert other.acquire("holder-2").probe
    other.heal("holder-2")
    assert not one.acquire("holder-1").probe
    snapshot = one.snapshot()
    assert snapshot.paused_for_seconds == 0 and snapshot.as_dict()["pause"] is None


def test_steps_double_up_to_the_cap_and_show_in_the_snapshot(
        store: redis.Redis, fleet: Callable[..., Limiter]) -> None:
    limiter = fleet()
    waits = []
    for _ in range(4):
        waits.append(limiter.trip(THROTTLED, "Resource level throttle limit").wait_seconds)
        move_clock(store, waits[-1] + 0.01)
        assert limiter.acquire("probe").probe
    assert waits == [1, 2, 4, 4]
    limiter.trip(THROTTLED, "Resource level throttle limit")
    pause = limiter.snapshot().as_dict()["pause"]
    assert pause["reason"] == THROTTLED and pause["step"] == 5
    assert "throttle" in pause["last_error"] and pause["hint"]


def test_a_daily_limit_pause_is_rechecked_every_15_minutes_not_held_to_midnight(
        store: redis.Redis, fleet: Callable[..., Limiter]) -> None:
    limiter = fleet(jitter=lambda: 0.5)
    move_to(store, datetime(2031, 6, 1, 9, 0, tzinfo=UTC))
    morning = limiter.trip(DAILY_LIMIT, "Resource level throttle limit")
    assert morning.wait_seconds == DAILY_RECHECK_SECONDS
    store.delete(keys.BLOCKED_UNTIL, keys.BREAKER)
    move_to(store, datetime(2031, 6, 1, 23, 59, 0, tzinfo=UTC))
    late = limiter.trip(DAILY_LIMIT, "Resource level throttle limit")
    # Past midnight by this process's share of the spread, so the fleet does not resume
    # in one instant.
    assert late.wait_seconds == pytest.approx(60 + MIDNIGHT_SPREAD_SECONDS / 2, abs=0.01)


def test_a_429_is_the_daily_limit_only_when_the_fleets_count_says_so(
        fleet: Callable[..., Limiter]) -> None:
    limiter = fleet(daily_limit=1000, reserve=100)
    assert not limiter.day_nearly_spent(12)
    assert limiter.day_nearly_spent(850)


def test_a_probe_that_got_no_answer_hands_the_probe_on_at_once(
        store: redis.Redis, fleet: Callable[..., Limiter]) -> None:
    one, other = fleet(), fleet()
    one.trip(THROTTLED, "Resource level throttle limit")
    move_clock(store, 1.1)
    assert one.acquire("holder-1").probe
    with pytest.raises(Paused):
        other.acquire("holder-2")
    one.release_probe("holder-1")  # its call timed out: says nothing about the throttle
    assert other.acquire("holder-2").probe
    assert one.snapshot().as_dict()["pause"]["reason"] == THROTTLED
