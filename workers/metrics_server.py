"""``jobops metrics``: the fleet's Prometheus metrics over HTTP, read from Redis at each scrape.

Counters and the latency histogram are the sums every process adds to one Redis hash
(``jobops.state.metrics``); the gauges are read live. While Redis does not answer, a scrape
gets 503 with a one-line reason, and the server goes on.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import redis
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from jobops.state import keys, metrics
from settings.urls import masked

if TYPE_CHECKING:
    from workers.runtime import Fleet

#: What a scrape sees while Redis is down or restarting.
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


class FleetCollector(Collector):
    """The fleet's counters and latency histogram from the Redis hash, and the live gauges
    from ``live``; every family is there from the start, its known series at 0."""

    def __init__(self, store: redis.Redis, live: Callable[[], Mapping[str, float]],
                 key: str = keys.METRICS) -> None:
        self._store, self._live, self._key = store, live, key

    def collect(self) -> Iterator[Metric]:
        counts = metrics.read(self._store, self._key)
        live = self._live()
        for name, series in metrics.counters(counts).items():
            help_text, label_names = metrics.COUNTERS[name]
            family = CounterMetricFamily(name, help_text, labels=label_names)
            for labels, value in sorted(series.items()):
                family.add_metric([dict(labels)[n] for n in label_names], value)
            yield family
        buckets, total = metrics.latency_buckets(counts)
        yield HistogramMetricFamily(metrics.LATENCY, metrics.LATENCY_HELP, buckets=buckets,
                                    sum_value=total)
        for name, value in live.items():
            yield GaugeMetricFamily(name, metrics.GAUGES.get(name, name), value=value)


def fleet_collector(fleet: Fleet) -> FleetCollector:
    """The collector of this process's fleet: its Redis, its limits and registry gauges."""
    return FleetCollector(fleet.redis, lambda: metrics.gauges(
        fleet.limiter.snapshot(), *fleet.pending.count(), fleet.stuck.count()))


class MetricsServer(ThreadingHTTPServer):
    """Serves ``registry`` on ``/metrics``; ``redis_shown``: the Redis it reads, as a 503
    names it (no password). Raises OSError when it cannot listen (a port in use)."""

    daemon_threads = True

    def __init__(self, host: str, port: int, registry: CollectorRegistry,
                 redis_shown: str) -> None:
        super().__init__((host, port), _Handler)
        self.registry, self.redis_shown = registry, redis_shown
        self._down_since: str | None = None
        self._lock = threading.Lock()

    def scrape(self) -> tuple[int, str, bytes]:
        """Status, content type and body of one scrape."""
        try:
            body = generate_latest(self.registry)
        except UNREACHABLE as error:
            reason = f"Redis at {self.redis_shown} is unreachable ({error})"
            self._note(reason)
            return 503, "text/plain; charset=utf-8", f"{reason}: no metrics until it " \
                "answers (start Redis or set REDIS_URL)\n".encode()
        self._note(None)
        return 200, CONTENT_TYPE_LATEST, body

    def _note(self, reason: str | None) -> None:
        """One line on stderr when Redis stops answering, one when it answers again."""
        with self._lock:
            before, self._down_since = self._down_since, reason
        if reason is not None and before is None:
            print(f"jobops metrics: {reason}: start Redis or set REDIS_URL; scrapes get 503 "
                  "until it answers",
                  file=sys.stderr, flush=True)
        elif reason is None and before is not None:
            print(f"jobops metrics: Redis at {self.redis_shown} answers again",
                  file=sys.stderr, flush=True)


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer

    def do_GET(self) -> None:  # noqa: N802 - stdlib's name
        if self.path.split("?")[0] != "/metrics":
            self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics\n")
            return
        self._send(*self.server.scrape())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def serve(fleet: Fleet, host: str, port: int) -> MetricsServer:
    """A server of ``fleet``'s metrics, listening (not serving yet: ``serve_forever``)."""
    registry = CollectorRegistry()
    registry.register(fleet_collector(fleet))
    return MetricsServer(host, port, registry, masked(fleet.settings.redis_url))
