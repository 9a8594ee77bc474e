"""The fleet's calls to LinkedIn: a per-second rate, a daily UTC quota, a shared pause."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from jobops.core.errors import Paused, QuotaExhausted, RateLimited
from jobops.core.pauses import (
    DAILY_LIMIT,
    DAILY_RECHECK_SECONDS,
    DAY_NEARLY_SPENT_SHARE,
    MIDNIGHT_SPREAD_SECONDS,
    PAUSE_HINTS,
    Permit,
    Trip,
)
from jobops.state import keys, lua
from jobops.state.replies import text

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
# Calls permitted at the window's edge reach LinkedIn a few milliseconds apart from when
# they were granted; a slightly longer window keeps any one-second span at LinkedIn within
# the limit.
WINDOW_MARGIN_MS = 50



@dataclass(frozen=True)
class LimitsSnapshot:
    now_ms: int
    calls_per_second: int
    permits_this_second: int
    daily_limit: int
    reserve: int
    used_today: int
    paused_for_seconds: float
    breaker: dict[str, str]

    @property
    def left_today(self) -> int:
        return max(0, self.daily_limit - self.reserve - self.used_today)

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls_per_second": self.calls_per_second,
            "permits_this_second": self.permits_this_second,
            "daily_limit": self.daily_limit,
            "reserve": self.reserve,
            "used_today": self.used_today,
            "left_today": self.left_today,
            "paused_for_seconds": round(self.paused_for_seconds, 3),
            "pause": self._pause(),
            "redis_time_utc": _utc(self.now_ms),
        }

    def _pause(self) -> dict[str, Any] | None:
        if not self.breaker:
            return None
        reason = self.breaker.get("reason", "")
        return {
            "reason": reason,
            "step": int(self.breaker.get("level", 0)),
            "since_utc": _utc(int(self.breaker.get("since", self.now_ms))),
            "last_error": self.breaker.get("message", ""),
            "probing": "probe" in self.breaker,
            "hint": PAUSE_HINTS.get(reason, ""),
        }


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))



class Limiter:
    """Permits for calls to LinkedIn's task-status endpoint, shared by the whole fleet:
    ``acquire()`` is the only door to that endpoint.

    The pause is a circuit breaker for the whole fleet. ``trip(reason, …)`` opens it when
    LinkedIn refuses every call alike (a 429, a refused fresh token, a 400 that single-URN
    calls get too): calls stop for a capped, jittered, doubling step. When a step ends, one
    call (the *probe*) goes out while the rest of the fleet keeps waiting; a probe LinkedIn
    answers closes the breaker (``heal``), one it refuses again opens the next step. So a
    problem that lasts costs one call — and at most one token request — per step,
    fleet-wide.
    """

    def __init__(
        self,
        store: redis.Redis,
        calls_per_second: int,
        daily_limit: int,
        reserve: int,
        max_wait_seconds: float,
        allow_clock_override: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        on_wait: Callable[[float], None] = lambda seconds: None,
        first_pause_seconds: float = 2.0,
        max_pause_seconds: float = 900.0,
        probe_hold_seconds: float = 60.0,
        jitter: Callable[[], float] = random.random,
        on_trip: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self._store = store
        self._on_wait = on_wait
        self._on_trip = on_trip
        self.calls_per_second = calls_per_second
        self.daily_limit = daily_limit
        self.reserve = reserve
        self._max_wait_seconds = max_wait_seconds
        self._offset_flag = "1" if allow_clock_override else "0"
        self._sleep = sleep
        self._jitter = jitter
        self.first_pause_seconds = first_pause_seconds
        self.max_pause_seconds = max_pause_seconds
        self._probe_hold_ms = int(probe_hold_seconds * 1000)
        self._acquire = lua.register(store, "limits_acquire")
        self._trip = lua.register(store, "limits_trip")
        self._heal = lua.register(store, "limits_heal")
        self._release_probe = lua.register(store, "limits_release_probe")
        self._snapshot = lua.register(store, "limits_snapshot")

    @property
    def _window_ms(self) -> int:
        return 1000 + WINDOW_MARGIN_MS

    def acquire(self, holder: str = "") -> Permit:
        """Take one permit (waiting briefly if the second is full).

        One Lua script, one round trip, decides with the Redis server's clock (never a
        host's): a pause first, then the day's quota, then a sliding one-second window. A
        granted permit is counted against both at once, so nothing can be sent that was not
        counted.

        ``holder`` names the caller: once one of its permits probes a pause, its next
        ones are granted too until the probe's hold ends (its retry with a fresh token).
        """
        holder = holder or uuid.uuid4().hex
        waited = 0.0
        while True:
            granted, reason, wait_ms, _, used = self._acquire(
                keys=[keys.CLOCK_OFFSET, keys.BLOCKED_UNTIL, keys.RATE_WINDOW, keys.BREAKER],
                args=[self._offset_flag, self.calls_per_second, self._window_ms,
                      self.daily_limit - self.reserve, keys.QUOTA_PREFIX, uuid.uuid4().hex,
                      holder, self._probe_hold_ms],
            )
            reason = text(reason)
            if granted:
                return Permit(int(used), reason == "probe")
            wait_seconds = int(wait_ms) / 1000
            if reason == "quota":
                log.warning("daily quota spent: %d of %d calls (reserve %d) used today; "
                            "resuming at 00:00 UTC, in %.0f s", int(used), self.daily_limit,
                            self.reserve, wait_seconds)
                raise QuotaExhausted("daily quota spent, resuming 00:00 UTC",
                                     retry_after_seconds=wait_seconds)
            if reason == "blocked":
                log.info("status calls are paused fleet-wide; %.1f s left", wait_seconds)
                raise Paused("status calls are paused fleet-wide",
                             retry_after_seconds=wait_seconds)
            if waited + wait_seconds > self._max_wait_seconds:
                log.info("no call permit within %.1f s (%d/s); rescheduling",
                         self._max_wait_seconds, self.calls_per_second)
                raise RateLimited(f"{self.calls_per_second} calls per second in use",
                                  retry_after_seconds=wait_seconds)
            # Every waiter would wake at the same instant and race for the same slot.
            wait_seconds += min(0.05, wait_seconds) * self._jitter()
            self._sleep(wait_seconds)
            self._on_wait(wait_seconds)
            waited += wait_seconds

    def trip(self, reason: str, message: str, seconds: float | None = None) -> Trip:
        """Pause every process's calls: ``seconds`` if LinkedIn said how long, otherwise the
        next doubling step of ``reason`` (the daily limit: until the next re-check)."""
        if seconds is not None:
            fixed_ms = int(max(seconds, 0.001) * 1000)
        else:
            fixed_ms = -2 if reason == DAILY_LIMIT else -1
        wait_ms, opened, step = self._trip(
            keys=[keys.CLOCK_OFFSET, keys.BLOCKED_UNTIL, keys.BREAKER],
            args=[self._offset_flag, reason, int(self.first_pause_seconds * 1000),
                  int(self.max_pause_seconds * 1000), self._jitter(), fixed_ms, message[:500],
                  int(DAILY_RECHECK_SECONDS * 1000), int(MIDNIGHT_SPREAD_SECONDS * 1000)])
        trip = Trip(int(wait_ms) / 1000, bool(opened), int(step))
        if trip.new_step:
            self._on_trip(reason)
            # One line per step for the whole fleet: only the process that opened it logs.
            log.error("status calls paused fleet-wide for %.1f s (%s, step %d): %s — %s",
                      trip.wait_seconds, reason, trip.step, message[:300],
                      PAUSE_HINTS.get(reason, ""))
        return trip

    def day_nearly_spent(self, used_today: int) -> bool:
        return used_today >= DAY_NEARLY_SPENT_SHARE * (self.daily_limit - self.reserve)

    def heal(self, holder: str) -> None:
        """LinkedIn answered ``holder``'s probe: every process may call again."""
        reason = self._heal(keys=[keys.BLOCKED_UNTIL, keys.BREAKER], args=[holder])
        if reason:
            log.warning("LinkedIn answers again; status calls resume fleet-wide (paused for "
                        "%s)", text(reason))

    def release_probe(self, holder: str) -> None:
        """``holder``'s probe ended without an answer that heals or trips the breaker:
        another may probe at once, rather than the fleet waiting out the probe's hold
        (a no-op once a trip or heal has replaced the probe)."""
        self._release_probe(keys=[keys.BLOCKED_UNTIL, keys.BREAKER], args=[holder])

    def snapshot(self) -> LimitsSnapshot:
        now_ms, in_window, used, blocked, breaker = self._snapshot(
            keys=[keys.CLOCK_OFFSET, keys.BLOCKED_UNTIL, keys.RATE_WINDOW, keys.BREAKER],
            args=[self._offset_flag, 1000, keys.QUOTA_PREFIX],
        )
        fields = [text(v) for v in breaker]
        return LimitsSnapshot(
            now_ms=int(now_ms),
            calls_per_second=self.calls_per_second,
            permits_this_second=int(in_window),
            daily_limit=self.daily_limit,
            reserve=self.reserve,
            used_today=int(used),
            paused_for_seconds=max(0, int(blocked) - int(now_ms)) / 1000,
            breaker=dict(zip(fields[::2], fields[1::2], strict=True)),
        )
