"""One run per round of a verification, however many copies of its message exist.

Redis redelivers a message whose acknowledgement it never saw (a worker lost its broker
connection, a process died); a copy can then run beside the original. Unchecked, both
would publish the next round and the verification would fork in two, doubling its
LinkedIn calls. Each round is therefore claimed with a lease before it runs and marked
done after its successor is published (or, with no successor, with its last writes): a
copy that finds the round done is dropped, one that finds it running comes back when the
lease would have run out (the holder may have died), so no copy is ever dropped while its
round is unfinished. A run may also claim another verification's round and settle it
(``claim_many``); that round is marked done by that run (``settled_by``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.client import Pipeline

from jobops import keys

_DONE = "done"
_SETTLED_BY = "done:by:"


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


# KEYS: run key. ARGV: holder. Gives the round back if this copy still holds it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class RunLeases:
    def __init__(self, store: redis.Redis, lease_seconds: float, done_ttl_seconds: int) -> None:
        self._store = store
        self._lease_ms = int(lease_seconds * 1000)
        self._done_ttl_seconds = done_ttl_seconds
        self._release = store.register_script(_RELEASE)

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
        granted, value, ttl_ms = answers[0], _text(answers[1]), answers[2]
        if granted:
            return Claim(granted=True, holder=holder,
                         values=dict(zip(reads, answers[3], strict=True)) if reads else {})
        if value is not None and value.startswith(_DONE):
            return Claim(granted=False, done=True,
                         settled_by=value.removeprefix(_SETTLED_BY)
                         if value.startswith(_SETTLED_BY) else None)
        if value is None:  # the lease ran out between the two commands
            return self.claim(verification_id, poll_round, reads)
        return Claim(granted=False, retry_in_seconds=max(ttl_ms, 100) / 1000 + 0.1)

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

    def finish(self, verification_id: str, poll_round: int, pipe: Pipeline | None = None,
               settled_by: str | None = None) -> None:
        """Mark the round done; ``settled_by``: the other verification whose run did it."""
        value = _DONE if settled_by is None else f"{_SETTLED_BY}{settled_by}"
        (pipe or self._store).set(keys.run_key(verification_id, poll_round), value,
                                  ex=self._done_ttl_seconds)

    def release(self, verification_id: str, poll_round: int, holder: str) -> None:
        """Give an unfinished round back (its run failed) so its retry need not wait."""
        self._release(keys=[keys.run_key(verification_id, poll_round)], args=[holder])
