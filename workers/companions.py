"""Settling other verifications with the answers a run's call brought for their URNs.

A run's call is filled with URNs other verifications wait on (coalescing). A verification
whose every pending URN that call answered is settled by the run that made it, under its
round's lease, so its own message later finds the round done and makes no call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobops.core.errors import InvalidRequest
from jobops.core.request import VerificationRequest, parse_request
from jobops.core.rounds import RunResult, run_once
from jobops.core.urns import is_task_urn
from jobops.state.keys import outcome_key
from workers.runtime import Fleet

log = logging.getLogger(__name__)


@dataclass
class Companion:
    """Another verification whose every pending URN this run's call answered: settled
    here, under its round's lease, so its own message finds the round done."""
    verification_id: str
    request: VerificationRequest
    holder: str
    result: RunResult
    records: dict[str, Any]


def claim_companions(fleet: Fleet, own_id: str, result: RunResult, now: float
                      ) -> list[Companion]:
    """Claim the rounds of the verifications this run's answers settle completely.

    One whose round runs elsewhere, or ran, is skipped: it reads the shared statuses. So
    is one holding a URN that another verification now owns (a URN scheduled twice):
    each URN is settled by, and for, one verification only.
    """
    if fleet.status_cache is None or not result.companions:
        return []
    answered = result.companions
    owners = fleet.status_cache.owners(list(answered))
    ids = sorted({owner for owner in owners.values() if owner != own_id})
    if not ids:
        return []
    wanted = _owned_requests(fleet, ids, owners, now)
    if not wanted:
        return []
    record_keys = [outcome_key(u) for _, request in wanted for u in request.task_urns]
    holders, records = fleet.leases.claim_many(
        [(verification_id, request.poll_round) for verification_id, request in wanted],
        record_keys)
    claimed = []
    for (verification_id, request), holder in zip(wanted, holders, strict=True):
        if holder is None:
            continue
        try:
            settled = run_once(request, fleet.client, fleet.settings, now, answers=answered)
            if settled.pending or settled.calls:
                raise RuntimeError(f"{len(settled.pending)} URNs left pending")
        except Exception:
            # Not this run's failure: the companion's own run delivers for itself.
            log.exception("verification %s could not be settled by %s; left to its own run",
                          verification_id, own_id)
            fleet.leases.release(verification_id, request.poll_round, holder)
            continue
        fleet.keeper.hold(verification_id, request.poll_round, holder)
        claimed.append(Companion(verification_id, request, holder, settled, records))
    return claimed


def _owned_requests(fleet: Fleet, ids: list[str], owners: Mapping[str, str], now: float
                    ) -> list[tuple[str, VerificationRequest]]:
    """The registered next round of each verification whose every URN it owns."""
    wanted = []
    for verification_id, kwargs in zip(ids, fleet.pending.arguments(ids), strict=True):
        if kwargs is None:
            continue
        try:
            request = parse_request(kwargs, now=now, strict=False,
                                    max_countdown_seconds=fleet.settings.cadence.max_countdown_seconds)
        except InvalidRequest:
            continue  # a poison message; its own run logs and drops it
        askable = [u for u in request.task_urns if is_task_urn(u)]
        if askable and all(owners.get(u) == verification_id for u in askable):
            wanted.append((verification_id, request))
    return wanted
