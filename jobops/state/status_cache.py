"""Coalesced polling: one status call answers for other verifications too."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis
from redis.client import Pipeline

from jobops.core.outcomes import is_terminal
from jobops.core.urns import encode_id_param, is_task_urn
from jobops.state import keys, lua
from jobops.state.replies import text

TERMINAL_TTL_SECONDS = 86_400
# How long a run waits for the answer about its URN that another run is asking for.
TAKEN_WAIT_SECONDS = 1.0



#: Upcoming URNs = Callable[[how many messages, due by], URNs of soon-to-run messages].
Upcoming = Callable[[int, float], list[str]]


class RedisStatusCache:
    """Shared statuses (``jobops:status:<urn>``) and the due set (``jobops:due``: every
    pending URN, with the time its verification next looks); ``upcoming``: URNs of
    verification messages still waiting in the broker (sent by name, never registered),
    which fill what the due set leaves of a call."""

    def __init__(self, store: redis.Redis, fresh_seconds: float,
                 sleep: Callable[[float], None] = time.sleep,
                 upcoming: Upcoming | None = None) -> None:
        self._store = store
        self._sleep = sleep
        self.fresh_seconds = fresh_seconds
        self._take = lua.register(store, "status_take")
        self._take_upcoming = lua.register(store, "status_take_upcoming")
        self._upcoming = upcoming

    def cached(self, urns: list[str], now: float,
               prefetched: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """Statuses other runs learned recently, by URN.

        ``prefetched``: raw values of their status keys, read already. A URN another run
        took as a companion is being asked about right now: its answer is waited for
        (briefly) rather than asked again.
        """
        if prefetched is None:
            known = self._read(urns)
        else:
            known = {u: json.loads(raw) for u in urns
                     if (raw := prefetched.get(keys.status_key(u))) is not None}
        missing = [u for u in urns if u not in known]
        if not missing:
            return known
        with self._store.pipeline(transaction=False) as pipe:
            for urn in missing:
                pipe.zscore(keys.DUE, urn)
            scores = pipe.execute()
        taken = [u for u, score in zip(missing, scores, strict=True)
                 if score is not None and score > now + self.fresh_seconds]
        waited = 0.0
        while taken and waited < TAKEN_WAIT_SECONDS:
            self._sleep(0.02)
            waited += 0.02
            found = self._read(taken)
            known.update(found)
            taken = [u for u in taken if u not in found]
        return known

    def _read(self, urns: list[str]) -> dict[str, dict[str, Any]]:
        if not urns:
            return {}
        raw = self._store.mget([keys.status_key(u) for u in urns])
        return {u: json.loads(r) for u, r in zip(urns, raw, strict=True) if r is not None}

    def companions(self, own: Iterable[str], spare_bytes: int, now: float) -> list[str]:
        """Other due URNs that fit in ``spare_bytes`` of a query string: the spare room of
        a run's last call (up to the 4 KB query limit), filled with URNs due within
        ``JOBOPS_STATUS_FRESH_SECONDS``, taken atomically so two runs do not pick the same
        ones."""
        mine = set(own)
        # A task URN costs about 80 bytes; ask for a few more than can fit.
        wanted = spare_bytes // 70 + len(mine)
        if spare_bytes <= 0 or wanted <= 0:
            return []
        found = self._take(keys=[keys.DUE], args=[now, now + self.fresh_seconds, wanted])
        picked, unused = [], {}
        for raw in found:
            urn = text(raw)
            cost = len(encode_id_param(urn)) + 1
            if urn not in mine and cost <= spare_bytes:
                picked.append(urn)
                spare_bytes -= cost
            elif urn not in mine:
                unused[urn] = now  # taken but not asked: due again at once
        if unused:
            self._store.zadd(keys.DUE, unused, xx=True)
        if self._upcoming is not None and spare_bytes > 0:
            picked += self._fill(mine | set(picked), spare_bytes, now)
        return picked

    def _fill(self, taken: set[str], spare_bytes: int, now: float) -> list[str]:
        """URNs of the messages a worker takes next, as many as fit: when their own runs
        come, their answers are shared already and they make no call."""
        assert self._upcoming is not None
        horizon = now + self.fresh_seconds
        # Read well past what fits: concurrent runs look at the same next messages, and
        # each takes what the others have not.
        candidates = [u for u in dict.fromkeys(self._upcoming(spare_bytes // 10, horizon))
                      if u not in taken and is_task_urn(u)]
        if not candidates:
            return []
        # Marked taken, as due URNs are, unless another run took (or answered) them: a
        # URN is asked about by one run, and its own run waits for that answer.
        taken_now = {text(u) for u in self._take_upcoming(
            keys=[keys.DUE], args=[horizon + 1, keys.status_key(""), *candidates])}
        picked, unasked = [], []
        for urn in candidates:
            cost = len(encode_id_param(urn)) + 1
            if urn not in taken_now:
                continue
            if cost > spare_bytes:
                unasked.append(urn)  # not asked: nobody should wait for it
                continue
            picked.append(urn)
            spare_bytes -= cost
        if unasked:
            self._store.zrem(keys.DUE, *unasked)
        return picked

    def remember(self, results: Mapping[str, Mapping[str, Any]], now: float) -> None:
        """Publish answers; a decided URN needs no more asking, a pending one not until
        its answer goes stale.

        A terminal status never changes, so it is kept for a day; an IN_PROGRESS one is
        trusted only while fresh (``JOBOPS_STATUS_FRESH_SECONDS``), which is therefore how
        stale an IN_PROGRESS answer can be.
        """
        if not results:
            return
        with self._store.pipeline(transaction=False) as pipe:
            for urn, result in results.items():
                if is_terminal(result.get("status")):
                    pipe.set(keys.status_key(urn), json.dumps(result), ex=TERMINAL_TTL_SECONDS)
                    pipe.zrem(keys.DUE, urn)
                else:
                    pipe.set(keys.status_key(urn), json.dumps(result),
                             px=max(1, int(self.fresh_seconds * 1000)))
                    pipe.zadd(keys.DUE, {urn: now + self.fresh_seconds}, xx=True)
            pipe.execute()

    def expect(self, urns: Iterable[str], due_at: float, owner: str,
               pipe: Pipeline | None = None) -> None:
        """These URNs' verification, ``owner``, looks again at ``due_at``."""
        mapping = {urn: due_at for urn in urns}
        if mapping:
            target = pipe or self._store
            target.zadd(keys.DUE, mapping)
            target.hset(keys.DUE_OWNERS, mapping=dict.fromkeys(mapping, owner))

    def settle(self, urns: Iterable[str], pipe: Pipeline | None = None) -> None:
        """These URNs have their outcome: nobody needs to ask for them."""
        settled = list(urns)
        if settled:
            target = pipe or self._store
            target.zrem(keys.DUE, *settled)
            target.hdel(keys.DUE_OWNERS, *settled)

    def owners(self, urns: list[str]) -> dict[str, str]:
        """The verification each URN belongs to, where known (``jobops:due:owners``).

        With it, the run that learned a companion's final status settles that companion's
        verification there and then (see ``workers.companions``), under the companion
        round's own lease; a verification busy elsewhere is left to read the shared status
        itself.
        """
        if not urns:
            return {}
        found = self._store.hmget(keys.DUE_OWNERS, urns)
        return {urn: text(owner)
                for urn, owner in zip(urns, found, strict=True) if owner is not None}
