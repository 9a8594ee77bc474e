"""Metrics held in a process until their flush interval, written by a thread of each process
when it goes idle, and cumulated when collected."""

from __future__ import annotations

import json
import os
import threading
import time
from types import TracebackType
from typing import Any

import pytest

from jobops.state.metrics import LATENCY, Metrics
from workers.metrics_server import FleetCollector

KEY = "test:metrics"


class FakeStore:
    """The little of redis.Redis that metrics use: a hash, written through a pipeline."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, float]] = {}
        self.written = threading.Event()

    def pipeline(self, transaction: bool = True) -> FakeStore:
        return self

    def __enter__(self) -> FakeStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        pass

    def hincrbyfloat(self, key: str, field: str, amount: float) -> None:
        stored = self.hashes.setdefault(key, {})
        stored[field] = stored.get(field, 0.0) + amount

    def execute(self) -> None:
        self.written.set()

    def hgetall(self, key: str) -> dict[bytes, bytes]:
        return {k.encode(): str(v).encode() for k, v in self.hashes.get(key, {}).items()}


@pytest.fixture
def fake() -> FakeStore:
    return FakeStore()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_counts_wait_for_the_interval_unless_forced(fake: Any) -> None:
    clock = Clock()
    metrics = Metrics(flush_seconds=1.0, clock=clock, key=KEY, background=False)
    metrics.add("jobops_urns_asked_total", 3)
    metrics.flush(fake)
    assert fake.hashes == {}
    clock.now += 1.0
    metrics.flush(fake)
    assert fake.hashes[KEY] == {"jobops_urns_asked_total": 3.0}
    metrics.add("jobops_urns_asked_total", 2)
    metrics.flush(fake)
    assert fake.hashes[KEY]["jobops_urns_asked_total"] == 3.0
    metrics.flush(fake, force=True)
    assert fake.hashes[KEY]["jobops_urns_asked_total"] == 5.0


def test_latency_buckets_are_stored_once_and_collected_cumulatively(fake: Any) -> None:
    metrics = Metrics(key=KEY, background=False)
    for latency in (30, 200, 200, 10 * 86_400, 99 * 86_400):
        metrics.outcome("SUCCEEDED", "CREATE", latency)
    metrics.flush(fake)
    # One bucket series per outcome in Redis, not one per bound above it.
    assert fake.hashes[KEY][f'{LATENCY}_bucket{{le="300"}}'] == 2.0
    [histogram] = [f for f in FleetCollector(fake, dict, KEY).collect() if f.name == LATENCY]
    buckets = [(s.labels["le"], s.value) for s in histogram.samples
               if s.name.endswith("_bucket")]
    assert buckets == [("60", 1), ("300", 3), ("600", 3), ("1800", 3), ("3600", 3),
                       ("21600", 3), ("86400", 3), ("604800", 3), ("2592000", 4), ("+Inf", 5)]
    assert [s.value for s in histogram.samples if s.name == f"{LATENCY}_count"] == [5]


def test_counts_of_an_idle_process_are_written_within_the_interval(fake: Any) -> None:
    metrics = Metrics(flush_seconds=0.5, key=KEY, store=fake)
    metrics.add("jobops_urns_asked_total", 3)
    added_at = time.monotonic()
    # Nothing else happens: no run ends, nobody calls flush.
    assert fake.written.wait(timeout=5)
    assert time.monotonic() - added_at < 0.5 + 1.0
    assert fake.hashes[KEY] == {"jobops_urns_asked_total": 3.0}


def test_a_forked_child_writes_its_own_counts_not_its_parents(fake: Any) -> None:
    metrics = Metrics(flush_seconds=0.2, key=KEY, store=fake)
    metrics.add("jobops_urns_asked_total", 100)  # the parent's, held: its own to write
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a prefork pool process
        try:
            own = FakeStore()
            metrics.flush(own, force=True)  # nothing of the parent's to write
            metrics.add("jobops_urns_asked_total", 1)
            written = own.written.wait(timeout=5)
            os.write(writer, json.dumps([written, own.hashes]).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        written, hashes = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert written, "the child started a flusher thread of its own"
    assert hashes == {KEY: {"jobops_urns_asked_total": 1.0}}
