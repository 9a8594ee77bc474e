"""The fleet's calls to LinkedIn: a per-second rate, a daily UTC quota, a shared pause.

``Limiter.acquire()`` is the only door to the task-status endpoint. One Lua script, one
round trip, decides with the Redis server's clock (never a host's): a pause set by a 429
first, then the day's quota, then a sliding one-second window. A granted permit is counted
against both at once, so nothing can be sent that was not counted.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from jobops import keys
from jobops.errors import Paused, QuotaExhausted, RateLimited

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

# KEYS: clock offset, blocked_until, window. ARGV: allow offset, rate, window ms,
# daily allowance, quota key prefix, permit id.
# Returns {granted (1/0), reason, wait ms, now ms, quota used}.
_ACQUIRE = _NOW + """
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if now < blocked then return {0, 'blocked', blocked - now, now, 0} end
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
redis.call('ZADD', KEYS[3], now, ARGV[6])
redis.call('PEXPIRE', KEYS[3], window * 2)
used = redis.call('INCR', qkey)
if used == 1 then redis.call('PEXPIRE', qkey, 2 * 86400000) end
return {1, 'ok', 0, now, used}
"""

# KEYS: clock offset, blocked_until. ARGV: allow offset, pause ms or -1 for midnight UTC.
_BLOCK = _NOW + """
local pause = tonumber(ARGV[2])
local untill = now + pause
if pause < 0 then untill = (math.floor(now / 86400000) + 1) * 86400000 end
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if untill > current then
  redis.call('SET', KEYS[2], untill, 'PX', untill - now + 1000)
end
return {untill - now, now}
"""

# KEYS: clock offset, blocked_until, window. ARGV: allow offset, window ms, quota prefix.
_SNAPSHOT = _NOW + """
local window = tonumber(ARGV[2])
local in_window = redis.call('ZCOUNT', KEYS[3], now - window, '+inf')
local day = math.floor(now / 86400000)
local used = tonumber(redis.call('GET', ARGV[3] .. day) or '0')
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
return {now, in_window, used, blocked}
"""


@dataclass(frozen=True)
class LimitsSnapshot:
    now_ms: int
    calls_per_second: int
    permits_this_second: int
    daily_limit: int
    reserve: int
    used_today: int
    paused_for_seconds: float

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
            "redis_time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                            time.gmtime(self.now_ms / 1000)),
        }


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
    ) -> None:
        self._store = store
        self._on_wait = on_wait
        self.calls_per_second = calls_per_second
        self.daily_limit = daily_limit
        self.reserve = reserve
        self._max_wait_seconds = max_wait_seconds
        self._offset_flag = "1" if allow_clock_override else "0"
        self._sleep = sleep
        self._acquire = store.register_script(_ACQUIRE)
        self._block = store.register_script(_BLOCK)
        self._snapshot = store.register_script(_SNAPSHOT)

    @property
    def _window_ms(self) -> int:
        return 1000 + WINDOW_MARGIN_MS

    def acquire(self) -> int:
        """Take one permit (waiting briefly if the second is full); returns calls used today."""
        waited = 0.0
        while True:
            granted, reason, wait_ms, _, used = self._acquire(
                keys=[keys.CLOCK_OFFSET, keys.BLOCKED_UNTIL, keys.RATE_WINDOW],
                args=[self._offset_flag, self.calls_per_second, self._window_ms,
                      self.daily_limit - self.reserve, keys.QUOTA_PREFIX, uuid.uuid4().hex],
            )
            if granted:
                return int(used)
            wait_seconds = int(wait_ms) / 1000
            reason = reason.decode() if isinstance(reason, bytes) else reason
            if reason == "quota":
                log.warning("daily quota spent: %d of %d calls (reserve %d) used today; "
                            "resuming at 00:00 UTC, in %.0f s", int(used), self.daily_limit,
                            self.reserve, wait_seconds)
                raise QuotaExhausted("daily quota spent, resuming 00:00 UTC",
                                     retry_after_seconds=wait_seconds)
            if reason == "blocked":
                log.info("LinkedIn asked for a pause; %.1f s left", wait_seconds)
                raise Paused("LinkedIn asked to pause calls", retry_after_seconds=wait_seconds)
            if waited + wait_seconds > self._max_wait_seconds:
                log.info("no call permit within %.1f s (%d/s); rescheduling",
                         self._max_wait_seconds, self.calls_per_second)
                raise RateLimited(f"{self.calls_per_second} calls per second in use",
                                  retry_after_seconds=wait_seconds)
            self._sleep(wait_seconds)
            self._on_wait(wait_seconds)
            waited += wait_seconds

    def pause(self, seconds: float | None) -> float:
        """Stop every process calling for ``seconds`` (None: until midnight UTC)."""
        pause_ms = -1 if seconds is None else int(seconds * 1000)
        wait_ms, _ = self._block(keys=[keys.CLOCK_OFFSET, keys.BLOCKED_UNTIL],
                                 args=[self._offset_flag, pause_ms])
        log.warning("LinkedIn throttled the fleet: no calls for %.1f s", int(wait_ms) / 1000)
        return int(wait_ms) / 1000

    def snapshot(self) -> LimitsSnapshot:
        now_ms, in_window, used, blocked = self._snapshot(
            keys=[keys.CLOCK_OFFSET, keys.BLOCKED_UNTIL, keys.RATE_WINDOW],
            args=[self._offset_flag, 1000, keys.QUOTA_PREFIX],
        )
        return LimitsSnapshot(
            now_ms=int(now_ms),
            calls_per_second=self.calls_per_second,
            permits_this_second=int(in_window),
            daily_limit=self.daily_limit,
            reserve=self.reserve,
            used_today=int(used),
            paused_for_seconds=max(0, int(blocked) - int(now_ms)) / 1000,
        )
