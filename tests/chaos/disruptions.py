"""The run's disruptions, on one clock: pool processes SIGKILLed every few seconds from
the start of scheduling, Redis SIGKILLed once scheduling is done (so work is pending, and
the pipeline's own publishing is not what is tested), raw garbage pushed onto the jobops
queue early on and again right after Redis is back."""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from tests.chaos.fleet import Fleet
from tests.chaos.observer import Observer
from tests.chaos.profiles import Profile
from tests.chaos.redis_server import RedisServer
from tests.chaos.scheduling import Scheduler

#: What a broken or hostile publisher could leave on a queue: not text, not JSON, JSON that
#: is not an object, an object that is not kombu's envelope.
GARBAGE: tuple[bytes, ...] = (
    b"\x00\xff\xfe\x80 not even text",
    b"not json at all",
    b"[1, 2, 3]",
    b'{"body": "bm90IGEgdGFzaw==", "headers": {}}',
)
#: How often the timeline looks at the clock and the workers.
TICK_SECONDS = 0.05


@dataclass
class Disruptions:
    kills_during_scheduling: int = 0
    kills_after_scheduling: int = 0
    redis_kills: int = 0
    redis_downtime_seconds: float | None = None
    #: From jobops' pending registry, read just before the SIGKILL.
    urns_pending_at_redis_kill: int | None = None
    #: Scheduled but not yet recorded by the consumer, at the same moment.
    urns_undelivered_at_redis_kill: int | None = None
    garbage_messages_pushed: int = 0
    #: Epoch seconds of the last disruption, and what was still to come then.
    last_at: float = 0.0
    urns_undelivered_at_last_disruption: int | None = None

    @property
    def kills(self) -> int:
        return self.kills_during_scheduling + self.kills_after_scheduling


class Timeline:
    def __init__(self, profile: Profile, fleet: Fleet, redis_server: RedisServer,
                 scheduler: Scheduler, observer: Observer, queue: str) -> None:
        self.profile = profile
        self.fleet = fleet
        self.redis_server = redis_server
        self.scheduler = scheduler
        self.observer = observer
        self.queue = queue
        self.record = Disruptions()
        self._next_kill = time.monotonic() + profile.kill_every_seconds
        self._last_kill: float | None = None

    def run(self) -> Disruptions:
        while not self._finished():
            self.fleet.supervise()
            self._step(time.monotonic())
            time.sleep(TICK_SECONDS)
        return self.record

    def _finished(self) -> bool:
        if self.scheduler.error is not None:
            raise RuntimeError("scheduling failed") from self.scheduler.error
        return (self.record.kills >= self.profile.kills
                and self.record.redis_kills >= int(self.profile.redis_kill)
                and (self.record.garbage_messages_pushed > 0 or not self.profile.garbage))

    def _step(self, now: float) -> None:
        if self.record.kills < self.profile.kills and now >= self._next_kill:
            self._kill_pool_process(now)
        elif not self._between_kills(now):
            return
        elif (self.profile.redis_kill and not self.record.redis_kills
              and self.scheduler.done.is_set()):
            self._kill_redis()
        elif self.profile.garbage and not self.record.garbage_messages_pushed:
            self._push_garbage()

    def _between_kills(self, now: float) -> bool:
        """Halfway to the next kill, so other disruptions do not blur with a kill."""
        if self.record.kills >= self.profile.kills:
            return True
        return (self._last_kill is not None
                and now >= self._last_kill + self.profile.kill_every_seconds / 2)

    def _kill_pool_process(self, now: float) -> None:
        during = not self.scheduler.done.is_set()
        what = self.fleet.kill_pool_process()
        if what is None:
            return  # every worker is starting; try again next tick
        if during:
            self.record.kills_during_scheduling += 1
        else:
            self.record.kills_after_scheduling += 1
        self._last_kill = now
        self._next_kill += self.profile.kill_every_seconds
        self._disrupted(f"kill {self.record.kills} ({'during' if during else 'after'} "
                        f"scheduling): {what}")

    def _kill_redis(self) -> None:
        self.record.urns_pending_at_redis_kill = self.observer.pending_urns()
        self.record.urns_undelivered_at_redis_kill = self._undelivered()
        self.record.redis_downtime_seconds = self.redis_server.kill_and_restart()
        self.record.redis_kills += 1
        self._disrupted(f"Redis SIGKILLed with {self.record.urns_pending_at_redis_kill} URNs "
                        f"pending, back after {self.record.redis_downtime_seconds:.2f} s")
        if self.profile.garbage:
            self._push_garbage()

    def _push_garbage(self) -> None:
        store = redis.Redis.from_url(self.redis_server.url)
        for payload in GARBAGE:
            store.lpush(self.queue, payload)
        self.record.garbage_messages_pushed += len(GARBAGE)
        self._disrupted(f"{len(GARBAGE)} garbage messages pushed onto {self.queue}")

    def _disrupted(self, what: str) -> None:
        self.record.last_at = time.time()
        self.record.urns_undelivered_at_last_disruption = self._undelivered()
        print(what, flush=True)

    def _undelivered(self) -> int | None:
        delivered = self.observer.delivered()
        return None if delivered is None else self.scheduler.urns_scheduled - delivered
