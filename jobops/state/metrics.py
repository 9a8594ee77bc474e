"""Prometheus metrics for what Flower cannot know, summed over every process in Redis.

Each process counts in memory and adds its counts to one Redis hash at the end of a
verification run, at most once per ``JOBOPS_METRICS_FLUSH_SECONDS`` and when the process
stops, so prefork children and other hosts need
no scrape of their own: ``jobops metrics`` serves the sum, plus live gauges (pending
verifications, today's quota), in Prometheus' text format.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from jobops.state import keys
from jobops.state.replies import text

# Seconds from the LinkedIn operation to its outcome: minutes normally, days at worst.
LATENCY_BUCKETS_SECONDS = (60, 300, 600, 1800, 3600, 6 * 3600, 86_400, 7 * 86_400, 30 * 86_400)
_HELP = {
    "jobops_linkedin_calls_total": ("counter", "Task-status calls to LinkedIn, by HTTP status "
                                    "('error': no answer)"),
    "jobops_urns_asked_total": ("counter", "Task URNs asked about, over all calls"),
    "jobops_outcomes_total": ("counter", "Outcomes delivered, by status and operation"),
    "jobops_token_refreshes_total": ("counter", "Access tokens fetched for the fleet"),
    "jobops_pauses_total": ("counter", "Fleet-wide pauses of status calls started, by reason "
                            "(throttled, retry_after, daily_limit, token_refused, "
                            "request_refused)"),
    "jobops_verification_errors_total": ("counter", "Verification runs that failed "
                                         "unexpectedly (retried; see jobops stuck)"),
    "jobops_permit_waits_total": ("counter", "Times a worker waited for a call permit"),
    "jobops_permit_wait_seconds_total": ("counter", "Time spent waiting for call permits"),
    "jobops_batches_sent_total": ("counter", "Batches sent to BATCH callbacks (re-sends of a "
                                  "batch whose sender died included)"),
    "jobops_batched_outcomes_total": ("counter", "Outcomes in the batches sent"),
    "jobops_settled_for_others_total": ("counter", "Verifications settled by a run whose call "
                                        "answered all their URNs"),
    "jobops_outcome_latency_seconds": ("histogram", "From the LinkedIn operation to its "
                                       "outcome"),
}


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels \
        else ""


class Metrics:
    """This process's counts since its last flush."""

    def __init__(self, flush_seconds: float = 0.0,
                 clock: Callable[[], float] = time.monotonic, key: str = keys.METRICS) -> None:
        self.key = key
        self._counts: dict[str, float] = {}
        self._lock = threading.Lock()
        self.flush_seconds = flush_seconds
        self._clock = clock
        self._flushed_at = clock()

    def add(self, series: str, amount: float = 1) -> None:
        with self._lock:
            self._counts[series] = self._counts.get(series, 0.0) + amount

    def call(self, status: int | str, urns: int) -> None:
        self.add("jobops_linkedin_calls_total" + _labels(status=str(status)))
        self.add("jobops_urns_asked_total", urns)

    def pause(self, reason: str) -> None:
        self.add("jobops_pauses_total" + _labels(reason=reason))

    def outcome(self, status: str, operation: str, latency_seconds: float) -> None:
        self.add("jobops_outcomes_total" + _labels(status=status, operation=operation))
        name = "jobops_outcome_latency_seconds"
        # Stored per bucket, not cumulated: one series per outcome; render() cumulates.
        bound = next((str(b) for b in LATENCY_BUCKETS_SECONDS if latency_seconds <= b), "+Inf")
        self.add(f"{name}_bucket" + _labels(le=bound))
        self.add(f"{name}_sum", latency_seconds)
        self.add(f"{name}_count")

    def flush(self, store: redis.Redis, force: bool = False) -> None:
        """Add this process's counts to the shared hash, if ``flush_seconds`` passed since
        the last time, or ``force``."""
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


def render(store: redis.Redis, gauges: dict[str, float], key: str = keys.METRICS) -> str:
    """The fleet's metrics in Prometheus' text exposition format."""
    stored = {text(k): float(v)
              for k, v in store.hgetall(key).items()}
    lines: list[str] = []
    _cumulate_buckets(stored, "jobops_outcome_latency_seconds")
    for name, (kind, help_text) in _HELP.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [f"{series} {value:g}" for series, value in sorted(stored.items())
                  if series.split("{")[0].removesuffix("_bucket").removesuffix("_sum")
                  .removesuffix("_count") == name]
    for name, value in gauges.items():
        lines += [f"# TYPE {name} gauge", f"{name} {value:g}"]
    return "\n".join(lines) + "\n"


def _cumulate_buckets(stored: dict[str, float], name: str) -> None:
    """Per-bucket counts to Prometheus' cumulative ``le`` buckets, in place."""
    buckets = [f"{name}_bucket" + _labels(le=bound)
               for bound in [*map(str, LATENCY_BUCKETS_SECONDS), "+Inf"]]
    if not any(series in stored for series in buckets):
        return
    total = 0.0
    for series in buckets:
        total += stored.get(series, 0.0)
        stored[series] = total


def gauges(snapshot: Any, pending_verifications: int, pending_urns: int,
           stuck_verifications: int = 0) -> dict[str, float]:
    return {
        "jobops_pending_verifications": pending_verifications,
        "jobops_stuck_verifications": stuck_verifications,
        "jobops_pending_urns": pending_urns,
        "jobops_quota_used_today": snapshot.used_today,
        "jobops_quota_left_today": snapshot.left_today,
        "jobops_permits_last_second": snapshot.permits_this_second,
        "jobops_paused_seconds": snapshot.paused_for_seconds,
    }
