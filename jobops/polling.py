"""Asking LinkedIn about a set of URNs in as few calls as the 4 KB limit allows.

``poll`` sorts every URN asked about into exactly one bucket: decided (a terminal
status), invalid (LinkedIn refused the key), pending (IN_PROGRESS, or no usable answer
this time). A call that fails stops the round — hammering a failing API helps nobody —
and leaves its URNs and the ones not yet asked pending, with the error kept for the
retry decision.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from jobops.client import StatusPage
from jobops.coalesce import StatusShare
from jobops.errors import BadBatchKey, LinkedInError, QueryTooLong
from jobops.outcomes import LINKEDIN_TERMINAL, Status
from jobops.urns import query_string, split_for_query

log = logging.getLogger(__name__)


class Fetcher(Protocol):
    def fetch(self, urns: list[str], now: float) -> StatusPage: ...


@dataclass
class PollReport:
    decided: dict[str, dict[str, Any]] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    calls: int = 0
    error: LinkedInError | None = None
    # The job of every URN LinkedIn answered for, IN_PROGRESS ones included.
    jobs: dict[str, str] = field(default_factory=dict)
    # Terminal answers for other verifications' URNs that filled the last call.
    companions: dict[str, dict[str, Any]] = field(default_factory=dict)


def _entry(urn: str, page: StatusPage, report: PollReport) -> dict[str, Any] | None:
    """LinkedIn's entry for ``urn``, or None after sorting a URN that has none."""
    found = page.results.get(urn)
    if isinstance(found, dict):
        return found
    if found is None and urn in page.errors:
        report.invalid[urn] = _error_text(page.errors[urn])
    else:
        log.warning("status answer has no usable entry for %s; asking again later", urn)
        report.pending.append(urn)
    return None


def _sort_page(asked: list[str], page: StatusPage, report: PollReport,
               companions: frozenset[str] = frozenset()) -> None:
    asked_set = set(asked)
    for urn in page.results:
        if urn not in asked_set and urn not in companions:
            log.warning("status answer holds %s, which was not asked for; ignored", urn)
    for urn in asked:
        result = _entry(urn, page, report)
        if result is None:
            continue
        if isinstance(result.get("externalJobPostingId"), str):
            report.jobs[urn] = result["externalJobPostingId"]
        if result.get("id") not in (None, urn):
            # The seed's own sample shows an entry whose id differs from its key; the key
            # is what was asked for, so it wins.
            log.info("status entry for %s carries id %s; using the key", urn, result.get("id"))
        status = result.get("status")
        if status in LINKEDIN_TERMINAL:
            report.decided[urn] = result
        elif status == Status.IN_PROGRESS:
            report.pending.append(urn)
        else:
            log.warning("unknown status %r for %s; asking again later", status, urn)
            report.pending.append(urn)


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


def poll(fetcher: Fetcher, urns: list[str], max_query_bytes: int, now: float,
         share: StatusShare | None = None) -> PollReport:
    """Ask about every URN in ``urns`` once; see the module docstring for the buckets.

    With ``share``, the last call is filled with other verifications' due URNs and every
    answer is shared; those companions' terminal answers are in ``report.companions``
    only.
    """
    report = PollReport()
    chunks = split_for_query(urns, max_query_bytes)
    companions: frozenset[str] = frozenset()
    if share is not None and chunks:
        spare = max_query_bytes - len(query_string(chunks[-1]).encode()) - 1
        extra = share.companions(urns, spare, now)
        chunks[-1] = chunks[-1] + extra
        companions = frozenset(extra)
    work: deque[list[str]] = deque(chunks)
    while work:
        chunk = work.popleft()
        report.calls += 1
        try:
            page = fetcher.fetch(chunk, now)
        except (BadBatchKey, QueryTooLong) as error:
            if len(chunk) == 1:
                if chunk[0] not in companions:
                    report.invalid[chunk[0]] = str(error)
                continue
            # LinkedIn does not say which key it refused: halve until it is isolated, so
            # one bad URN never holds back the good ones beside it.
            middle = len(chunk) // 2
            work.appendleft(chunk[middle:])
            work.appendleft(chunk[:middle])
            continue
        except LinkedInError as error:
            report.error = error
            report.pending.extend(u for u in chunk if u not in companions)
            for rest in work:
                report.pending.extend(u for u in rest if u not in companions)
            break
        if share is not None:
            share.share({u: r for u, r in page.results.items() if isinstance(r, dict)}, now)
            # A companion LinkedIn gave no usable answer for is its owner's to ask again;
            # left in the due set it would be taken and asked over and over.
            share.settle(u for u in chunk if u in companions
                         and not isinstance(page.results.get(u), dict))
        _sort_page([u for u in chunk if u not in companions], page, report, companions)
        report.companions.update(
            (u, r) for u, r in page.results.items() if u in companions
            and isinstance(r, dict) and r.get("status") in LINKEDIN_TERMINAL)
    return report
