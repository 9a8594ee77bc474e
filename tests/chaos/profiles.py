"""The chaos run's shapes: a short one for CI, and the long one the issue's targets name."""

from __future__ import annotations

from dataclasses import dataclass

#: Every outcome within this long of the last pool kill (the issue's first target).
KILLS_RECOVERY_TARGET_SECONDS = 30.0
#: The same once a Redis SIGKILL and garbage on the queue are added (its second).
BROKER_RECOVERY_TARGET_SECONDS = 45.0


@dataclass(frozen=True)
class Profile:
    """One run's shape.

        Profile("short", urns=300, operations=30, schedule_seconds=4, kills=3, …)
    """

    name: str
    urns: int
    operations: int
    #: Scheduling is spread over this long, as a pipeline posts over time, so that kills
    #: land while operations are being scheduled as well as after.
    schedule_seconds: float
    #: SIGKILLs of jobops pool processes, one every kill_every_seconds.
    kills: int
    kill_every_seconds: float
    #: Share of status calls answered with a random fault, on top of one forced per kind.
    fault_rate: float
    redis_kill: bool
    garbage: bool
    #: How long the sandbox keeps a task IN_PROGRESS (plus up to the jitter): long enough
    #: that work is still pending at the last disruption, so recovery is measured, not
    #: skipped because everything was already in.
    in_progress_seconds: float
    in_progress_jitter_seconds: float
    #: Give up waiting for outcomes this long after the last disruption.
    timeout_seconds: float
    #: Then wait at most this long for nothing to be left that could send another copy. A
    #: dead worker's unacknowledged messages go back to the queue when a worker starts or
    #: on kombu's slow scan (every 10th of its 10 s ticks): only a long wait sees them run.
    settle_seconds: float

    @property
    def recovery_target_seconds(self) -> float:
        broker_trouble = self.redis_kill or self.garbage
        return BROKER_RECOVERY_TARGET_SECONDS if broker_trouble else KILLS_RECOVERY_TARGET_SECONDS


SHORT = Profile("short", urns=300, operations=30, schedule_seconds=4, kills=3,
                kill_every_seconds=2, fault_rate=0.10, redis_kill=True, garbage=True,
                in_progress_seconds=2, in_progress_jitter_seconds=6, timeout_seconds=60,
                settle_seconds=10)
LONG = Profile("long", urns=600, operations=60, schedule_seconds=7, kills=8,
               kill_every_seconds=2, fault_rate=0.10, redis_kill=True, garbage=True,
               in_progress_seconds=3, in_progress_jitter_seconds=12, timeout_seconds=180,
               settle_seconds=150)
PROFILES = {profile.name: profile for profile in (SHORT, LONG)}
