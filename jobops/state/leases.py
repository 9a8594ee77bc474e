"""One run per round of a verification, however many copies of its message exist."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.client import Pipeline

from jobops.core.errors import JobopsError
from jobops.state import keys, lua
from jobops.state.replies import text_or_none

log = logging.getLogger(__name__)

_DONE = "done"
_SETTLED_BY = "done:by:"
_RUNNING = "running:"
#: The format of the lease values this release writes and reads. A release that changes
#: them writes ``v<N>:…`` with a higher N; a worker meeting a value it does not know
#: leaves that round to the worker that wrote it (it never runs it, so it never delivers
#: twice) — which is what makes a rolling upgrade safe in both directions.
LEASE_FORMAT = 1


@dataclass(frozen=True)
class Claim:
    granted: bool
    done: bool = False
    retry_in_seconds: float = 0.0
    holder: str = ""
    # The keys asked for with the claim, read in the same round trip (granted claims only).
    values: Mapping[str, Any] = field(default_factory=dict)
    # A round settled by another verification's run: that verification's id.
    settled_by: str | None = None
    # Held in a format of a newer release: left to that release's workers.
    unknown: bool = False




class LeaseLost(JobopsError):
    """Raised when another copy of a round holds or finished it: this run must stop."""



class RunLeases:
    """A lease per round of a verification (``jobops:run:<id>:<round>``).

    Redis redelivers a message whose acknowledgement it never saw (a worker lost its broker
    connection, a process died); a copy can then run beside the original. Unchecked, both
    would publish the next round and the verification would fork in two, doubling its
    LinkedIn calls. Each round is therefore claimed with a lease before it runs and marked
    done after its successor is published (or, with no successor, with its last writes): a
    copy that finds the round done is dropped, one that finds it running comes back when
    the lease would have run out (the holder may have died), so no copy is ever dropped
    while its round is unfinished. A run may also claim another verification's round and
    settle it (``claim_many``); that round is marked done by that run (``settled_by``).

    Renewing, finishing and releasing all compare the holder in one script: a run that lost
    its lease to another copy can neither finish nor overwrite that copy's round, and stops.
    """

    def __init__(self, store: redis.Redis, lease_seconds: float, done_ttl_seconds: int) -> None:
        self._store = store
        self._lease_ms = int(lease_seconds * 1000)
        self._done_ttl_seconds = done_ttl_seconds
        self._release = lua.register(store, "release_if_owner")
        self._renew = lua.register(store, "lease_renew")
        self._finish = lua.register(store, "lease_finish")

    @staticmethod
    def new_holder() -> str:
        return f"running:{uuid.uuid4().hex}"

    def claim(self, verification_id: str, poll_round: int, reads: Sequence[str] = ()
              ) -> Claim:
        """Claim the round; ``reads`` are string keys the run needs, fetched alongside.

        One round trip: whoever holds the round, and for how long, is read with it.
        """
        key = keys.run_key(verification_id, poll_round)
        holder = self.new_holder()
        with self._store.pipeline(transaction=False) as pipe:
            pipe.set(key, holder, nx=True, px=self._lease_ms)
            pipe.get(key)
            pipe.pttl(key)
            if reads:
                pipe.mget(reads)
            answers = pipe.execute()
        granted, value, ttl_ms = answers[0], text_or_none(answers[1]), answers[2]
        if granted:
            return Claim(granted=True, holder=holder,
                         values=dict(zip(reads, answers[3], strict=True)) if reads else {})
        if value is not None and value.startswith(_DONE):
            return Claim(granted=False, done=True,
                         settled_by=value.removeprefix(_SETTLED_BY)
                         if value.startswith(_SETTLED_BY) else None)
        if value is None:  # the lease ran out between the two commands
            return self.claim(verification_id, poll_round, reads)
        # A value kept with no TTL (none of this release's) is looked at a few leases on.
        retry_in_seconds = (max(ttl_ms, 100) if ttl_ms > 0 else 5 * self._lease_ms) / 1000 \
            + 0.1
        if not value.startswith(_RUNNING):
            log.warning("round %d of verification %s is held as %r, a state this release "
                        "(lease format %d) does not know: left to the release that wrote "
                        "it", poll_round, verification_id, value[:40], LEASE_FORMAT)
            return Claim(granted=False, retry_in_seconds=retry_in_seconds, unknown=True)
        return Claim(granted=False, retry_in_seconds=retry_in_seconds)

    def claim_many(self, rounds: Sequence[tuple[str, int]], reads: Sequence[str] = ()
                   ) -> tuple[list[str | None], dict[str, Any]]:
        """Claim other verifications' rounds and read ``reads``, in one round trip.

        Returns each round's holder if granted, else None (running elsewhere, or done),
        and the values read.
        """
        if not rounds:
            return [], {}
        holders = [self.new_holder() for _ in rounds]
        with self._store.pipeline(transaction=False) as pipe:
            for (verification_id, poll_round), holder in zip(rounds, holders, strict=True):
                pipe.set(keys.run_key(verification_id, poll_round), holder, nx=True,
                         px=self._lease_ms)
            if reads:
                pipe.mget(reads)
            answers = pipe.execute()
        granted = answers[:len(rounds)]
        values = dict(zip(reads, answers[-1], strict=True)) if reads else {}
        return [holder if ok else None
                for holder, ok in zip(holders, granted, strict=True)], values

    def finish(self, verification_id: str, poll_round: int, holder: str,
               pipe: Pipeline | None = None, settled_by: str | None = None) -> None:
        """Mark the round done if ``holder`` still holds it; ``settled_by``: the other
        verification whose run did it."""
        value = _DONE if settled_by is None else f"{_SETTLED_BY}{settled_by}"
        self._finish(keys=[keys.run_key(verification_id, poll_round)],
                     args=[holder, value, self._done_ttl_seconds], client=pipe)

    def release(self, verification_id: str, poll_round: int, holder: str) -> None:
        """Give an unfinished round back (its run failed) so its retry need not wait."""
        self._release(keys=[keys.run_key(verification_id, poll_round)], args=[holder])

    def renew(self, held: Mapping[str, str]) -> list[str]:
        """Extend the leases in ``held`` (run key -> holder); returns the keys lost."""
        if not held:
            return []
        run_keys = list(held)
        lost = self._renew(keys=run_keys, args=[self._lease_ms, *held.values()])
        return [run_keys[int(i) - 1] for i in lost]


class LeaseKeeper:
    """Keeps the leases of this process's run alive from a thread, and checks them for
    the run before each step that must not happen twice (a LinkedIn call, a publish).

    Leases are short (``JOBOPS_RUN_LEASE_SECONDS``, 12 s) and kept alive only by their
    holder: a process that dies stops renewing, so a redelivered copy of its round takes
    over within one lease.
    """

    def __init__(self, leases: RunLeases, interval_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._leases = leases
        self._interval_seconds = interval_seconds
        self._clock = clock
        self._held: dict[str, str] = {}
        # Until when each lease is known to be this run's with most of its length left:
        # claimed or renewed within one renewal interval. A check before then needs no
        # round trip — no copy can take a lease over before it runs out.
        self._fresh_until: dict[str, float] = {}
        self._lost: set[str] = set()
        self._guard = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, verification_id: str, poll_round: int, holder: str) -> None:
        """Keep a lease just claimed (or taken for settling) alive."""
        key = keys.run_key(verification_id, poll_round)
        with self._guard:
            self._held[key] = holder
            self._fresh_until[key] = self._clock() + self._interval_seconds
            self._lost.discard(key)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="jobops-leases",
                                                daemon=True)
                self._thread.start()

    def drop(self, verification_id: str, poll_round: int) -> None:
        key = keys.run_key(verification_id, poll_round)
        with self._guard:
            self._held.pop(key, None)
            self._fresh_until.pop(key, None)
            self._lost.discard(key)

    def check(self) -> set[str]:
        """Renew the leases held now unless all were renewed moments ago; returns the run
        keys another copy holds or finished. A Redis error propagates: the run fails and
        is retried."""
        now = self._clock()
        with self._guard:
            fresh = all(self._fresh_until.get(key, 0.0) > now for key in self._held)
        if not fresh:
            self._renew()
        with self._guard:
            return set(self._lost)

    def _renew(self) -> None:
        started = self._clock()
        with self._guard:
            held = dict(self._held)
        lost = set(self._leases.renew(held))
        with self._guard:
            for key, holder in held.items():
                if self._held.get(key) != holder:
                    continue  # dropped or claimed again meanwhile
                if key in lost:
                    self._lost.add(key)
                else:
                    self._fresh_until[key] = started + self._interval_seconds

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._interval_seconds)
            try:
                self._renew()
            except redis.RedisError as error:
                # The run meets the same error at its next step; the lease may lapse.
                log.warning("could not renew run leases: %s", type(error).__name__)
