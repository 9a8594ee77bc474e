"""Asking LinkedIn about a set of URNs in as few calls as the 4 KB limit allows, and sorting
each into decided, invalid or pending."""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from jobops.core.errors import BadBatchKey, LinkedInError, QueryTooLong, RequestRefused
from jobops.core.outcomes import Status, is_terminal
from jobops.core.urns import CANARY_URN, query_string, split_for_query

log = logging.getLogger(__name__)


@dataclass
class StatusPage:
    """LinkedIn's answer to one status call: entries by URN, and per-URN errors."""

    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, Any] = field(default_factory=dict)


class StatusCache(Protocol):
    """Answers shared between verifications, and URNs other verifications wait on."""

    def cached(self, urns: list[str], now: float,
               prefetched: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]: ...

    def companions(self, own: Iterable[str], spare_bytes: int, now: float) -> list[str]: ...

    def remember(self, results: Mapping[str, Mapping[str, Any]], now: float) -> None: ...

    def settle(self, urns: Iterable[str]) -> None: ...


class Fetcher(Protocol):
    def fetch(self, urns: list[str], now: float) -> StatusPage: ...

    def request_refused(self, error: LinkedInError) -> float:
        """Pause the fleet's calls for a refused request form; returns the pause."""
        ...


#: Extra calls one run may spend isolating refused URNs: enough to find one bad URN among
#: the 54 of a full call (two calls per halving).
ISOLATION_CALLS = 12
#: Statuses in an answer's ``errors`` object that say the URN itself is malformed or
#: unknown; any other (5xx, 429, anything new) leaves the URN pending.
FINAL_ERROR_STATUSES = frozenset({400, 404})


@dataclass
class PollReport:
    decided: dict[str, dict[str, Any]] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    calls: int = 0
    error: LinkedInError | None = None
    # The job of every URN LinkedIn answered for, IN_PROGRESS ones included.
    job_by_urn: dict[str, str] = field(default_factory=dict)
    # Terminal answers for other verifications' URNs that filled the last call.
    companions: dict[str, dict[str, Any]] = field(default_factory=dict)


def _entry(urn: str, page: StatusPage, report: PollReport) -> dict[str, Any] | None:
    """LinkedIn's entry for ``urn``, or None after sorting a URN that has none."""
    found = page.results.get(urn)
    if isinstance(found, dict):
        return found
    if found is None and urn in page.errors:
        error = page.errors[urn]
        if _error_status(error) in FINAL_ERROR_STATUSES:
            report.invalid[urn] = _error_text(error)
            return None
        log.warning("status answer has error %.200s for %s; asking again later",
                    _error_text(error), urn)
    else:
        log.warning("status answer has no usable entry for %s; asking again later", urn)
    report.pending.append(urn)
    return None


def _error_status(error: Any) -> int | None:
    status = error.get("status") if isinstance(error, dict) else None
    try:
        return int(status) if status is not None else None
    except (TypeError, ValueError):
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
            report.job_by_urn[urn] = result["externalJobPostingId"]
        if result.get("id") not in (None, urn):
            # The seed's own sample shows an entry whose id differs from its key; the key
            # is what was asked for, so it wins.
            log.info("status entry for %s carries id %s; using the key", urn, result.get("id"))
        status = result.get("status")
        if is_terminal(status):
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
         cache: StatusCache | None = None) -> PollReport:
    """Ask about every URN in ``urns`` once, sorting each into exactly one bucket of the
    report: decided (a terminal status), invalid (LinkedIn refused the key, and the request
    form is known good), pending (IN_PROGRESS, or no usable answer this time).

    With ``cache``, the last call is filled with other verifications' due URNs and every
    answer is shared; those companions' terminal answers are in ``report.companions``
    only.
    """
    chunks = split_for_query(urns, max_query_bytes)
    companions: frozenset[str] = frozenset()
    if cache is not None and chunks:
        spare = max_query_bytes - len(query_string(chunks[-1]).encode()) - 1
        extra = cache.companions(urns, spare, now)
        chunks[-1] = chunks[-1] + extra
        companions = frozenset(extra)
    return _Round(fetcher, now, cache, companions).run(chunks)


class _Round:
    """One ``poll``: the calls, then the isolation of URNs LinkedIn refused with a 400.

    A 400 is final for a URN only with evidence on both sides: that LinkedIn accepts the
    request's form (another call of this run was answered, or a canary call about a
    well-formed unknown URN is), and that the URN is the problem (the batch-key message, or
    a URN refused alone while the rest of its call was answered).
    """

    def __init__(self, fetcher: Fetcher, now: float, cache: StatusCache | None,
                 companions: frozenset[str]) -> None:
        self.fetcher, self.now, self.cache, self.companions = fetcher, now, cache, companions
        self.report = PollReport()
        self.answered = False  # some call of this run was answered: the form is fine

    def run(self, chunks: list[list[str]]) -> PollReport:
        refused: list[tuple[list[str], LinkedInError]] = []
        work: deque[list[str]] = deque(chunks)
        while work:
            chunk = work.popleft()
            try:
                self._call(chunk)
            except (BadBatchKey, RequestRefused, QueryTooLong) as error:
                refused.append((chunk, error))
            except LinkedInError as error:
                # A failing call stops the round: hammering a failing API helps nobody. Its
                # URNs and the ones not yet asked stay pending, with the error kept for the
                # retry decision.
                self._stop(error, [chunk, *work, *(c for c, _ in refused)])
                return self.report
        if refused:
            self._isolate(refused)
        return self.report

    def _call(self, chunk: list[str]) -> None:
        self.report.calls += 1
        page = self.fetcher.fetch(chunk, self.now)
        self.answered = True
        companions = self.companions
        if self.cache is not None:
            self.cache.remember({u: r for u, r in page.results.items() if isinstance(r, dict)},
                             self.now)
            # A companion LinkedIn gave no usable answer for is its owner's to ask again;
            # left in the due set it would be taken and asked over and over.
            self.cache.settle(u for u in chunk if u in companions
                              and not isinstance(page.results.get(u), dict))
        _sort_page([u for u in chunk if u not in companions], page, self.report, companions)
        self.report.companions.update(
            (u, r) for u, r in page.results.items() if u in companions
            and isinstance(r, dict) and is_terminal(r.get("status")))

    def _stop(self, error: LinkedInError, chunks: list[list[str]]) -> None:
        self.report.error = error
        for chunk in chunks:
            self.report.pending.extend(u for u in chunk if u not in self.companions)

    def _form_is_fine(self, refusal: LinkedInError) -> bool:
        """Whether LinkedIn accepts this request form; False after pausing the fleet.

        A 400 that the canary gets too is a configuration problem: the fleet pauses and
        every URN stays pending.
        """
        if self.answered:
            return True
        try:
            self.report.calls += 1
            self.fetcher.fetch([CANARY_URN], self.now)
        except (BadBatchKey, RequestRefused, QueryTooLong) as error:
            wait = self.fetcher.request_refused(error)
            log.error("LinkedIn refuses status calls about a well-formed task URN too (%s); "
                      "no URN is judged, calls pause for %.0f s", error, wait)
            error.retry_after_seconds = wait
            self.report.error = error
            return False
        except LinkedInError as error:
            self.report.error = error
            return False
        self.answered = True
        return True

    def _isolate(self, refused: list[tuple[list[str], LinkedInError]]) -> None:
        """Halve refused calls within ISOLATION_CALLS per run; what the budget leaves is
        asked again next round."""
        if not self._form_is_fine(refused[0][1]):
            self._stop(self.report.error or refused[0][1], [c for c, _ in refused])
            return
        budget = ISOLATION_CALLS
        # (URNs, LinkedIn's refusal, index of the refused call they came from)
        work = deque((chunk, error, origin) for origin, (chunk, error) in enumerate(refused))
        alone: list[tuple[str, LinkedInError, int]] = []
        unresolved: set[int] = set()
        while work:
            part, why, origin = work.popleft()
            if len(part) == 1:
                alone.append((part[0], why, origin))
                continue
            if budget < 2:
                unresolved.add(origin)
                self.report.error = self.report.error or why
                self.report.pending.extend(u for u in part if u not in self.companions)
                continue
            middle = len(part) // 2
            halves = [part[:middle], part[middle:]]
            for index, half in enumerate(halves):
                budget -= 1
                try:
                    self._call(half)
                except (BadBatchKey, RequestRefused, QueryTooLong) as again:
                    work.append((half, again, origin))
                except LinkedInError as failure:
                    self._stop(failure, [*halves[index:], *(p for p, _, _ in work),
                                         *([u] for u, _, _ in alone)])
                    return
        singles = Counter(origin for _, _, origin in alone)
        for urn, why, origin in alone:
            # Refused alone while every other URN of its call was answered.
            isolated = (singles[origin] == 1 and origin not in unresolved
                        and len(refused[origin][0]) > 1)
            self._judge(urn, why, isolated)

    def _judge(self, urn: str, error: LinkedInError, isolated: bool) -> None:
        """A URN refused alone: INVALID when LinkedIn blames the key, or when it was the
        only one of its call refused; pending otherwise."""
        if urn in self.companions:
            return
        if isinstance(error, BadBatchKey) or (isinstance(error, RequestRefused) and isolated):
            self.report.invalid[urn] = str(error)
            return
        log.warning("LinkedIn refused a call about %s alone (%s); asking again later",
                    urn, error)
        self.report.error = self.report.error or error
        self.report.pending.append(urn)
