"""Every unfinished verification, with when its next run is due: the safety net for
messages the broker loses."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import redis
from redis.client import Pipeline

from jobops.state import keys, lua
from jobops.state.replies import text

#: Time between two sweeps' searches that found no message of a round, for it to count
#: as lost: far longer than kombu takes to move a message from a queue to the unacked hash.
MIN_UNSEEN_SECONDS = 1.0


@dataclass(frozen=True)
class Verdict:
    """What a sweep makes of the overdue rounds it found: late while a message of it still
    waits in a queue or is held by a worker (a backlog, a stopped worker), lost once two
    sweeps in a row found none. Only a lost one is re-sent, under the same task id, so run
    leases drop it if the original shows up after all."""

    #: A message of it waits in a queue or is held by a worker: late, left to run.
    waiting: list[str] = field(default_factory=list)
    #: No message found, not (long enough) before either: looked for again next sweep.
    #: By id, when a sweep first found none.
    unseen_since: dict[str, float] = field(default_factory=dict)
    #: No message found by this sweep nor by an earlier one: re-sent.
    lost: list[str] = field(default_factory=list)


def judge(overdue: Collection[str], held: Collection[str], unseen_since: Mapping[str, float],
          now: float, min_unseen_seconds: float = MIN_UNSEEN_SECONDS) -> Verdict:
    """Sort overdue rounds into waiting, unseen and lost.

    ``held``: the ids with a message in the broker now; ``unseen_since``: what the last
    sweep found unseen. One search is not proof: a message moving between a queue and a
    worker can slip past it, so a round is lost only when two searches, at least
    ``min_unseen_seconds`` apart, found nothing.
    """
    verdict = Verdict()
    for verification_id in overdue:
        if verification_id in held:
            verdict.waiting.append(verification_id)
        elif now - unseen_since.get(verification_id, now) >= min_unseen_seconds:
            verdict.lost.append(verification_id)
        else:
            verdict.unseen_since[verification_id] = unseen_since.get(verification_id, now)
    return verdict


def _task_urns(kwargs: Mapping[str, Any]) -> list[str]:
    """The text values of a round's ``task_urns`` (a round sent by name may hold others)."""
    urns = kwargs.get("task_urns")
    return [u for u in urns if isinstance(u, str)] if isinstance(urns, list) else []


class PendingRegistry:
    """The next round of every unfinished verification, and the queues its message may wait
    in.

    The Redis broker can lose a message (a worker dies between taking a message and
    recording it as unacknowledged — kombu does those in two steps). So each verification
    also registers its next round here, before that round's message is published. A round
    is overdue ``grace_seconds`` after it was due: a grace period longer than the broker's
    own redelivery.
    """

    def __init__(self, store: redis.Redis, grace_seconds: float, ttl_seconds: int) -> None:
        self._store = store
        self._forget = lua.register(store, "pending_forget")
        self._postpone = lua.register(store, "pending_postpone")
        self._take_held = lua.register(store, "held_take")
        self._released = lua.register(store, "held_released")
        self._hold_next = lua.register(store, "held_next")
        self.grace_seconds = grace_seconds
        self._ttl_seconds = ttl_seconds

    def expect(self, verification_id: str, kwargs: Mapping[str, Any], due_at: float,
               pipe: Pipeline | None = None, queue: str | None = None,
               held: bool = False) -> None:
        """The next round of ``verification_id`` runs with ``kwargs`` at ``due_at``.

        ``queue``: where its message goes, if no jobops worker may consume it yet (a
        worker's own queue is known from its start, see :meth:`add_queues`). ``held``: no
        message of its own is sent; the round waits in the held set until a release takes
        it (see :meth:`take_held`). With ``pipe``, the commands join it and run when its
        owner executes it.
        """
        with lua.joined(self._store, pipe) as target:
            # The arguments first: the sweeper skips an id whose arguments are missing.
            target.set(keys.pending_args_key(verification_id), json.dumps(kwargs),
                       ex=self._ttl_seconds)
            if held:
                target.zadd(keys.HELD, {verification_id: due_at})
                target.zrem(keys.PENDING, verification_id)
            else:
                target.zadd(keys.PENDING, {verification_id: due_at + self.grace_seconds})
                target.zrem(keys.HELD, verification_id)
            target.hset(keys.PENDING_URNS, verification_id,
                        len(kwargs.get("task_urns") or []))
            if queue is not None:
                target.sadd(keys.QUEUES, queue)

    def hold_next(self, verification_id: str, kwargs: Mapping[str, Any], due_at: float,
                  holder: str) -> bool:
        """Hold the verification's next round (``kwargs["poll_round"]``) until ``due_at``,
        if ``holder`` still holds the round before it and the next one has not run (else
        this run stalled past its lease, or an earlier round's run came back: it leaves
        the verification to the run that took it over). Returns whether it was held."""
        poll_round = int(kwargs.get("poll_round") or 0)
        return bool(self._hold_next(
            keys=[keys.pending_args_key(verification_id), keys.HELD, keys.PENDING,
                  keys.PENDING_URNS, keys.run_key(verification_id, poll_round),
                  keys.run_key(verification_id, poll_round - 1)],
            args=[verification_id, json.dumps(kwargs), due_at, self._ttl_seconds,
                  len(kwargs.get("task_urns") or []), holder]))

    def take_held(self, now: float, until: float, limit: int) -> list[str]:
        """Ids of up to ``limit`` held rounds due by ``now``, taken until ``until``: no
        other release takes them before, and every one is due again after, unless
        :meth:`released` says its message is out."""
        taken = self._take_held(keys=[keys.HELD], args=[now, until, limit])
        return [text(i) for i in taken]

    def released(self, verification_ids: list[str], until: float, now: float) -> int:
        """The messages of these rounds, taken until ``until``, are out: from now on they
        are pending like any round with a message. Returns how many moved."""
        if not verification_ids:
            return 0
        return int(self._released(keys=[keys.HELD, keys.PENDING],
                                  args=[until, now + self.grace_seconds, *verification_ids]))

    def add_queues(self, queues: list[str]) -> None:
        """Rounds' messages may wait in ``queues``: the sweeper looks there before it
        takes one for lost."""
        if queues:
            self._store.sadd(keys.QUEUES, *queues)

    def queues(self) -> list[str]:
        return sorted(text(q)
                      for q in self._store.smembers(keys.QUEUES))

    def forget(self, verification_id: str, pipe: Pipeline | None = None) -> None:
        with lua.joined(self._store, pipe) as target:
            lua.queue(target, self._forget, [keys.PENDING, keys.pending_args_key(
                verification_id), keys.PENDING_URNS, keys.HELD], [verification_id])

    def arguments(self, verification_ids: list[str]) -> list[dict[str, Any] | None]:
        """The registered arguments of each verification's next round, None if unknown."""
        if not verification_ids:
            return []
        raw = self._store.mget([keys.pending_args_key(i) for i in verification_ids])
        return [None if r is None else json.loads(r) for r in raw]

    def overdue(self, now: float, limit: int) -> list[str]:
        """Ids of the rounds overdue at ``now``, most overdue first."""
        found = self._store.zrangebyscore(keys.PENDING, "-inf", now, start=0, num=limit)
        return [text(i) for i in found]

    def postpone(self, verification_ids: list[str], now: float) -> list[str]:
        """Take the rounds still overdue for overdue again one grace period later; returns
        those, so two sweepers never both take one."""
        if not verification_ids:
            return []
        pushed = self._postpone(keys=[keys.PENDING],
                                args=[now, now + self.grace_seconds, *verification_ids])
        return [text(i) for i in pushed]

    def unseen(self) -> dict[str, float]:
        """The overdue rounds the last sweep found no message of, and since when."""
        return {text(k): float(v)
                for k, v in self._store.hgetall(keys.SWEEP_UNSEEN).items()}

    def note_unseen(self, unseen_since: Mapping[str, float]) -> None:
        """Replace what the last sweep found unseen."""
        with self._store.pipeline(transaction=True) as pipe:
            pipe.delete(keys.SWEEP_UNSEEN)
            if unseen_since:
                pipe.hset(keys.SWEEP_UNSEEN,
                          items=[part for item in unseen_since.items() for part in item])
            pipe.execute()

    def drop(self, verification_ids: list[str]) -> None:
        """Unregister rounds whose arguments are gone (nothing to re-send them with)."""
        if verification_ids:
            with self._store.pipeline(transaction=False) as pipe:
                pipe.zrem(keys.PENDING, *verification_ids)
                pipe.zrem(keys.HELD, *verification_ids)
                pipe.hdel(keys.PENDING_URNS, *verification_ids)
                pipe.execute()

    def _registered(self) -> Iterator[dict[str, Any]]:
        """The arguments of every registered round, as a SCAN finds them."""
        names = (n for n in self._store.scan_iter(match=keys.PENDING_ARGS_PATTERN, count=1000)
                 if n != keys.PENDING_URNS.encode())
        while page := list(islice(names, 500)):
            yield from (json.loads(raw) for raw in self._store.mget(page) if raw is not None)

    def urns_with_context(self, key: str, value: str) -> set[str]:
        """Pending URNs of verifications whose context has ``key`` equal to ``value``."""
        return {urn for kwargs in self._registered()
                if str((kwargs.get("context") or {}).get(key)) == value
                for urn in _task_urns(kwargs)}

    def verifying(self, urns: Collection[str]) -> set[str]:
        """Those of ``urns`` an unfinished verification still asks about: in the due set
        (kept while polling is coalesced) or in a registered round's arguments."""
        wanted = list(dict.fromkeys(urns))
        if not wanted:
            return set()
        scores = self._store.zmscore(keys.DUE, wanted)
        found = {u for u, score in zip(wanted, scores, strict=True) if score is not None}
        rest = set(wanted) - found
        for kwargs in self._registered() if rest else ():
            found.update(rest.intersection(_task_urns(kwargs)))
            rest -= found
            if not rest:
                break
        return found

    def count(self) -> tuple[int, int]:
        """Unfinished verifications, and their pending task URNs."""
        with self._store.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.PENDING)
            pipe.zcard(keys.HELD)
            pipe.hvals(keys.PENDING_URNS)
            with_messages, held, urns = pipe.execute()
        return int(with_messages) + int(held), sum(int(n) for n in urns)
