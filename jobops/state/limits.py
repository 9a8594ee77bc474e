"""The fleet's calls to LinkedIn: a per-second rate, a daily UTC quota, a shared pause.

``Limiter.acquire()`` is the only door to the task-status endpoint. One Lua script, one
round trip, decides with the Redis server's clock (never a host's): a pause first, then
the day's quota, then a sliding one-second window. A granted permit is counted against
both at once, so nothing can be sent that was not counted.

The pause is a circuit breaker for the whole fleet. ``trip(reason, …)`` opens it when
LinkedIn refuses every call alike (a 429, a refused fresh token, a 400 that single-URN
calls get too): calls stop for a capped, jittered, doubling step. When a step ends, one
call (the *probe*) goes out while the rest of the fleet keeps waiting; a probe LinkedIn
answers closes the breaker (``heal``), one it refuses again opens the next step. So a
problem that lasts costs one call — and at most one token request — per step, fleet-wide.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import redis

from jobops.core.errors import Paused, QuotaExhausted, RateLimited
from jobops.state import keys

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
# Calls permitted at the window's edge reach LinkedIn a few milliseconds apart from when
# they were granted; a slightly longer window keeps any one-second span at LinkedIn within
# the limit.
WINDOW_MARGIN_MS = 50

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == '1' then now = now + tonumber(redis.call('GET', KEYS[1]) or '0') end
"""

# KEYS: clock offset, blocked_until, window, breaker. ARGV: allow offset, rate, window ms,
# daily allowance, quota key prefix, permit id, holder id, probe hold ms.
# Returns {granted (1/0), reason ('ok', 'probe', 'blocked', 'quota', 'rate'), wait ms,
# now ms, quota used}.
_ACQUIRE = _NOW + """
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
local granted = 'ok'
local elect = false
if now < blocked then
  -- The probe may call again within its hold (once more, with a fresh token).
  if redis.call('HGET', KEYS[4], 'probe') ~= ARGV[7] then
    return {0, 'blocked', blocked - now, now, 0}
  end
  granted = 'probe'
elseif redis.call('EXISTS', KEYS[4]) == 1 then
  elect = true
end
local day = math.floor(now / 86400000)
local qkey = ARGV[5] .. day
local used = tonumber(redis.call('GET', qkey) or '0')
if used >= tonumber(ARGV[4]) then
  return {0, 'quota', (day + 1) * 86400000 - now, now, used}
end
local window = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  return {0, 'rate', tonumber(oldest[2]) + window - now + 1, now, used}
end
if elect then
  -- Only a caller that will call: one turned away by the quota or rate would hold the
  -- fleet for nothing.
  local hold = now + tonumber(ARGV[8])
  redis.call('SET', KEYS[2], hold, 'PX', tonumber(ARGV[8]) + 1000)
  redis.call('HSET', KEYS[4], 'probe', ARGV[7], 'probe_until', hold)
  granted = 'probe'
end
redis.call('ZADD', KEYS[3], now, ARGV[6])
redis.call('PEXPIRE', KEYS[3], window * 2)
used = redis.call('INCR', qkey)
if used == 1 then redis.call('PEXPIRE', qkey, 2 * 86400000) end
return {1, granted, 0, now, used}
"""

# KEYS: clock offset, blocked_until, breaker. ARGV: allow offset, reason, first step ms,
# step cap ms, jitter (0-1), fixed step ms (-1: doubling, -2: the daily limit), message,
# daily re-check ms, midnight spread ms.
# A trip while the fleet is already paused (not merely holding for a probe) adds no step.
# Returns {pause ms left, 1 if this trip opened a new step, step number}.
_TRIP = _NOW + """
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
local probing = tonumber(redis.call('HGET', KEYS[3], 'probe_until') or '-1')
local level = 0
if redis.call('HGET', KEYS[3], 'reason') == ARGV[2] then
  level = tonumber(redis.call('HGET', KEYS[3], 'level') or '0')
end
if now < blocked and blocked ~= probing then return {blocked - now, 0, level} end
local step = tonumber(ARGV[6])
if step == -2 then
  local midnight = (math.floor(now / 86400000) + 1) * 86400000
  step = math.min(tonumber(ARGV[8]), midnight - now + tonumber(ARGV[9]) * tonumber(ARGV[5]))
elseif step < 0 then
  step = math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) * 2 ^ math.min(level, 40))
  step = step / 2 + step / 2 * tonumber(ARGV[5])
end
step = math.max(1, math.floor(step))
local untill = now + step
redis.call('SET', KEYS[2], untill, 'PX', step + 1000)
redis.call('HSETNX', KEYS[3], 'since', now)
redis.call('HSET', KEYS[3], 'reason', ARGV[2], 'level', level + 1, 'until', untill,
           'message', ARGV[7])
redis.call('HDEL', KEYS[3], 'probe', 'probe_until')
redis.call('PEXPIRE', KEYS[3], step + 4 * tonumber(ARGV[4]) + 86400000)
return {step, 1, level + 1}
"""

# KEYS: blocked_until, breaker. ARGV: holder id. The probe's call failed in a way that
# says nothing about the pause (a timeout, a 5xx): the next caller probes, now.
_RELEASE_PROBE = """
if redis.call('HGET', KEYS[2], 'probe') ~= ARGV[1] then return 0 end
if redis.call('GET', KEYS[1]) == redis.call('HGET', KEYS[2], 'probe_until') then
  redis.call('DEL', KEYS[1])
end
redis.call('HDEL', KEYS[2], 'probe', 'probe_until')
return 1
"""

# KEYS: blocked_until, breaker. ARGV: holder id. LinkedIn answered the probe: calls
# resume for everyone. Returns the reason the breaker had been open for, or false.
_HEAL = """
if redis.call('HGET', KEYS[2], 'probe') ~= ARGV[1] then return false end
local reason = redis.call('HGET', KEYS[2], 'reason')
if redis.call('GET', KEYS[1]) == redis.call('HGET', KEYS[2], 'probe_until') then
  redis.call('DEL', KEYS[1])
end
redis.call('DEL', KEYS[2])
return reason
"""

# KEYS: clock offset, blocked_until, window, breaker. ARGV: allow offset, window ms, quota
# prefix.
_SNAPSHOT = _NOW + """
local window = tonumber(ARGV[2])
local in_window = redis.call('ZCOUNT', KEYS[3], now - window, '+inf')
local day = math.floor(now / 86400000)
local used = tonumber(redis.call('GET', ARGV[3] .. day) or '0')
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
local breaker = redis.call('HGETALL', KEYS[4])
return {now, in_window, used, blocked, breaker}
"""


#: Why the fleet's breaker opened; each has its own doubling steps.
THROTTLED = "throttled"  # a 429 without Retry-After, the day's count far from spent
RETRY_AFTER = "retry_after"  # a 429 with Retry-After: exactly as long as LinkedIn said
DAILY_LIMIT = "daily_limit"  # a 429 when the fleet's own count says the day is spent
TOKEN_REFUSED = "token_refused"  # 401 even with a fresh token, or credentials refused
REQUEST_REFUSED = "request_refused"  # a 400 that single-URN calls get as well

#: What an operator reads next to each reason (logs, ``jobops limits``).
PAUSE_HINTS = {
    THROTTLED: "LinkedIn throttles the application; calls resume by themselves",
    RETRY_AFTER: "LinkedIn asked for a pause with Retry-After",
    DAILY_LIMIT: "LinkedIn says the day's calls are spent; one call re-checks every "
                 "15 minutes and calls resume after 00:00 UTC",
    TOKEN_REFUSED: "LinkedIn refuses the application's tokens: check its access to the Job "
                   "Posting API and LINKEDIN_CLIENT_ID / LINKEDIN_CLIENT_SECRET",
    REQUEST_REFUSED: "LinkedIn refuses the status request itself (not one URN): check "
                     "LINKEDIN_API_URL, the application's API version and permissions",
}

#: A 429 means the day's limit only once the fleet's own count has used this share of
#: its allowance; before that it is a throttle of seconds.
DAY_NEARLY_SPENT_SHARE = 0.9
#: A daily-limit pause is re-checked with one call this often (never waits to midnight).
DAILY_RECHECK_SECONDS = 900.0
#: After 00:00 UTC the fleet resumes over this long, not all in the same second.
MIDNIGHT_SPREAD_SECONDS = 300.0


class Permit(NamedTuple):
    """A call permit: the day's calls so far, and whether this call probes a pause."""

    used_today: int
    probe: bool


class Trip(NamedTuple):
    """What ``Limiter.trip`` did: the pause left, and whether this trip started a step."""

    wait_seconds: float
    new_step: bool
    step: int


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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Limiter:
    """Permits for calls to LinkedIn's task-status endpoint, shared by the whole fleet."""

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
        self._acquire = store.register_script(_ACQUIRE)
        self._trip = store.register_script(_TRIP)
        self._heal = store.register_script(_HEAL)
        self._release_probe = store.register_script(_RELEASE_PROBE)
        self._snapshot = store.register_script(_SNAPSHOT)

    @property
    def _window_ms(self) -> int:
        return 1000 + WINDOW_MARGIN_MS

    def acquire(self, holder: str = "") -> Permit:
        """Take one permit (waiting briefly if the second is full).

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
            reason = _text(reason)
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
                        "%s)", _text(reason))

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
        fields = [_text(v) for v in breaker]
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
