"""Prometheus metrics for what Flower cannot know, summed over every process in Redis.

Each process counts in memory and adds its counts to one Redis hash at most once per
``JOBOPS_METRICS_FLUSH_SECONDS``: at the end of a verification run, from a background
thread of its own while it has counts waiting (so an idle process's last counts are not
held back), and when it stops. Prefork children and other hosts need no scrape of their
own: ``jobops metrics`` (``workers.metrics_server``) serves the sum, plus live gauges.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis

from jobops.core.outcomes import OUTCOME_STATUSES, Operation
from jobops.core.pauses import PAUSE_HINTS
from jobops.state import keys
from jobops.state.replies import text

log = logging.getLogger(__name__)

# Seconds from the LinkedIn operation to its outcome: minutes normally, days at worst.
LATENCY_BUCKETS_SECONDS = (60, 300, 600, 1800, 3600, 6 * 3600, 86_400, 7 * 86_400, 30 * 86_400)
LATENCY = "jobops_outcome_latency_seconds"
LATENCY_HELP = "From the LinkedIn operation to its outcome"
#: A background flush never comes sooner than this after the last one, even with
#: JOBOPS_METRICS_FLUSH_SECONDS at 0 (every run writes its counts then).
MIN_BACKGROUND_WAIT_SECONDS = 0.25

#: Counter name -> (help, label names). The names are the dashboards': never rename one.
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "jobops_linkedin_calls_total": ("Task-status calls to LinkedIn, by HTTP status ('error': "
                                    "no answer)", ("status",)),
    "jobops_urns_asked_total": ("Task URNs asked about, over all calls", ()),
    "jobops_outcomes_total": ("Outcomes delivered, by status and operation",
                              ("operation", "status")),
    "jobops_token_refreshes_total": ("Access tokens fetched for the fleet", ()),
    "jobops_pauses_total": ("Fleet-wide pauses of status calls started, by reason "
                            "(throttled, retry_after, daily_limit, token_refused, "
                            "request_refused)", ("reason",)),
    "jobops_verification_errors_total": ("Verification runs that failed unexpectedly "
                                         "(retried; see jobops stuck)", ()),
    "jobops_permit_waits_total": ("Times a worker waited for a call permit", ()),
    "jobops_permit_wait_seconds_total": ("Time spent waiting for call permits", ()),
    "jobops_batches_sent_total": ("Batches sent to BATCH callbacks (re-sends of a batch "
                                  "whose sender died included)", ()),
    "jobops_batched_outcomes_total": ("Outcomes in the batches sent", ()),
    "jobops_settled_for_others_total": ("Verifications settled by a run whose call answered "
                                        "all their URNs", ()),
}
#: The label values known before anything happened: their series are shown at 0.
_KNOWN_LABELS: dict[str, list[dict[str, str]]] = {
    "jobops_outcomes_total": [{"operation": operation, "status": status}
                              for operation in Operation for status in sorted(OUTCOME_STATUSES)],
    "jobops_pauses_total": [{"reason": reason} for reason in PAUSE_HINTS],
}
GAUGES = {
    "jobops_pending_verifications": "Verifications not finished yet",
    "jobops_stuck_verifications": "Verifications whose runs keep failing (see jobops stuck)",
    "jobops_pending_urns": "Task URNs of the unfinished verifications",
    "jobops_quota_used_today": "Status calls made this UTC day",
    "jobops_quota_left_today": "Status calls left this UTC day, reserve excluded",
    "jobops_permits_last_second": "Call permits taken in the last second",
    "jobops_paused_seconds": "Seconds left of a fleet-wide pause of status calls (0: none)",
}

#: Labels, sorted by name: one series is one text however its labels were given.
Labels = tuple[tuple[str, str], ...]
_SERIES = re.compile(r'(\w+)(?:\{(.*)\})?')
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels \
        else ""


def parse_series(series: str) -> tuple[str, Labels]:
    """A series of the hash as its name and labels."""
    match = _SERIES.fullmatch(series)
    if match is None:
        return series, ()
    return match.group(1), tuple(sorted(_LABEL.findall(match.group(2) or "")))


class Metrics:
    """This process's counts since its last flush.

    ``store``: where the background flush writes; without it, the store handed to the last
    :meth:`flush`. ``background``: whether counts waiting are written by a thread.
    """

    def __init__(self, flush_seconds: float = 0.0,
                 clock: Callable[[], float] = time.monotonic, key: str = keys.METRICS,
                 store: redis.Redis | None = None, background: bool = True) -> None:
        self.key = key
        self.flush_seconds = flush_seconds
        self._clock = clock
        self._store = store
        self._background = background
        self._start_afresh()

    def _start_afresh(self) -> None:
        """This process's own start: a forked child holds none of its parent's counts (the
        parent writes them) and starts a flusher thread of its own (threads do not fork)."""
        self._pid = os.getpid()
        self._counts: dict[str, float] = {}
        self._lock = threading.Lock()
        self._flushed_at = self._clock()
        self._flusher: threading.Thread | None = None

    def _in_this_process(self) -> None:
        if self._pid != os.getpid():
            self._start_afresh()

    def add(self, series: str, amount: float = 1) -> None:
        self._in_this_process()
        thread = None
        with self._lock:
            self._counts[series] = self._counts.get(series, 0.0) + amount
            if self._background and self._flusher is None:
                thread = self._flusher = threading.Thread(
                    target=self._flush_in_background, name="jobops-metrics-flush", daemon=True)
        if thread is not None:
            thread.start()

    def call(self, status: int | str, urns: int) -> None:
        self.add("jobops_linkedin_calls_total" + _labels(status=str(status)))
        self.add("jobops_urns_asked_total", urns)

    def pause(self, reason: str) -> None:
        self.add("jobops_pauses_total" + _labels(reason=reason))

    def outcome(self, status: str, operation: str, latency_seconds: float) -> None:
        self.add("jobops_outcomes_total" + _labels(status=status, operation=operation))
        # Stored per bucket, not cumulated: one series per outcome; cumulated when read.
        bound = next((str(b) for b in LATENCY_BUCKETS_SECONDS if latency_seconds <= b), "+Inf")
        self.add(f"{LATENCY}_bucket" + _labels(le=bound))
        self.add(f"{LATENCY}_sum", latency_seconds)
        self.add(f"{LATENCY}_count")

    def flush(self, store: redis.Redis, force: bool = False) -> None:
        """Add this process's counts to the shared hash, if ``flush_seconds`` passed since
        the last time, or ``force``."""
        self._in_this_process()
        self._store = store
        now = self._clock()
        with self._lock:
            if not force and now - self._flushed_at < self.flush_seconds:
                return
            counts, self._counts = self._counts, {}
            self._flushed_at = now
        if not counts:
            return
        with store.pipeline(transaction=False) as pipe:
            for series, amount in counts.items():
                pipe.hincrbyfloat(self.key, series, amount)
            pipe.execute()

    def _next_flush_in(self) -> float:
        due = self._flushed_at + self.flush_seconds - self._clock()
        return max(MIN_BACKGROUND_WAIT_SECONDS, due)

    def _flush_in_background(self) -> None:
        """Write the counts waiting once ``flush_seconds`` passed, for the process's life."""
        failing = False
        while True:
            time.sleep(self._next_flush_in())
            if self._store is None:
                continue
            try:
                self.flush(self._store)
            except redis.RedisError as error:
                if not failing:
                    log.warning("metrics could not be written to Redis (%s); counts are lost "
                                "until it answers", error)
                failing = True
            else:
                failing = False


def read(store: redis.Redis, key: str = keys.METRICS) -> dict[str, float]:
    """The fleet's counts: series -> value."""
    return {text(k): float(v) for k, v in store.hgetall(key).items()}


def counters(counts: Mapping[str, float]) -> dict[str, dict[Labels, float]]:
    """Each counter's series, by labels: those read, and those known (at 0) not read yet."""
    found: dict[str, dict[Labels, float]] = {name: {} for name in COUNTERS}
    for series, value in counts.items():
        name, labels = parse_series(series)
        if name in COUNTERS and tuple(k for k, _ in labels) == tuple(sorted(COUNTERS[name][1])):
            found[name][labels] = value
    for name, (_, label_names) in COUNTERS.items():
        known = _KNOWN_LABELS.get(name, [] if label_names else [{}])
        for known_labels in known:
            found[name].setdefault(tuple(sorted(known_labels.items())), 0.0)
    return found


def latency_buckets(counts: Mapping[str, float]) -> tuple[list[tuple[str, float]], float]:
    """The latency histogram: its cumulative buckets, in order up to +Inf, and its sum."""
    total, buckets = 0.0, []
    for bound in [*map(str, LATENCY_BUCKETS_SECONDS), "+Inf"]:
        total += counts.get(f"{LATENCY}_bucket" + _labels(le=bound), 0.0)
        buckets.append((bound, total))
    return buckets, counts.get(f"{LATENCY}_sum", 0.0)


def gauges(snapshot: Any, pending_verifications: int, pending_urns: int,
           stuck_verifications: int = 0) -> dict[str, float]:
    """The live gauges (see :data:`GAUGES`), from a limits snapshot and registry counts."""
    return {
        "jobops_pending_verifications": pending_verifications,
        "jobops_stuck_verifications": stuck_verifications,
        "jobops_pending_urns": pending_urns,
        "jobops_quota_used_today": snapshot.used_today,
        "jobops_quota_left_today": snapshot.left_today,
        "jobops_permits_last_second": snapshot.permits_this_second,
        "jobops_paused_seconds": snapshot.paused_for_seconds,
    }
