"""Batched callbacks: lists of at most N outcomes, or T seconds old, each outcome once."""

from __future__ import annotations

import json
import math
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest
import redis

from jobops.core.request import MAX_BATCH_BYTES, MAX_BATCH_SIZE
from jobops.state import keys
from jobops.state.batches import BatchSpec
from sandbox import SandboxState
from tests.conftest import Recorder
from tests.jobs import job, post, posted_urns, task_urns
from workers import app
from workers.callbacks import batch_task_id, callback_task_id, publish_batches
from workers.runtime import runtime
from workers.scheduling import schedule_from_answer, verify_urns

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def fake_outcome(recorder: Recorder, index: int) -> tuple[str, dict[str, Any]]:
    """A (record key, outcome) pair as a verification would deliver it."""
    urn = f"urn:li:simpleJobPostingTask:{recorder.tag}-{index}"
    return keys.outcome_key(urn), {"task_urn": urn, "status": "SUCCEEDED",
                                   "operation": "CREATE", "context": recorder.context}


def assert_each_once(outcomes: list[dict[str, Any]], names: list[str]) -> None:
    """Each outcome (task URN, or "element N" if refused at posting) arrived once."""
    got = sorted(o["task_urn"] or f"element {o['element_index']}" for o in outcomes)
    assert len(got) == len(set(got)), "an outcome arrived twice"
    assert got == sorted(names)


def sent_so_far(store: redis.Redis) -> tuple[float, float]:
    """The fleet's metrics: batches sent, and outcomes in them."""
    counts = store.hmget(keys.METRICS, ["jobops_batches_sent_total",
                                        "jobops_batched_outcomes_total"])
    return float(counts[0] or 0), float(counts[1] or 0)


def test_single_job_operations_fill_shared_batches(sandbox: SandboxState, recorder: Recorder,
                                                   store: redis.Redis) -> None:
    sandbox.config.in_progress_seconds = 0
    batches_before, outcomes_before = sent_so_far(store)
    urns = posted_urns(300)
    callbacks = {"BATCH": recorder.batch_callback(batch_size=50, batch_seconds=1)}
    for urn in urns:
        verify_urns([urn], "CREATE", callbacks, recorder.context, countdown_seconds=2)
    outcomes = recorder.wait(300, timeout_seconds=90, settle_seconds=2)
    assert_each_once(outcomes, urns)
    assert {o["status"] for o in outcomes} == {"SUCCEEDED"}
    assert {tuple(o["_extra"]) for o in outcomes} == {(recorder.tag,)}
    batches = recorder.batches()
    assert len({b["task_id"] for b in batches}) == len(batches)
    assert sum(b["size"] for b in batches) == 300
    assert max(b["size"] for b in batches) <= 50
    # Full batches, plus the few a deadline sealed while outcomes came in slower.
    assert len(batches) <= math.ceil(300 / 50) + 3, sorted(b["size"] for b in batches)
    batches_after, outcomes_after = sent_so_far(store)
    assert (batches_after - batches_before, outcomes_after - outcomes_before) == (
        len(batches), 300)


def test_a_small_batch_is_sent_when_its_time_is_up(sandbox: SandboxState,
                                                   recorder: Recorder) -> None:
    sandbox.config.in_progress_seconds = 0
    answer = post([job() for _ in range(7)], "CREATE")
    callbacks = {"BATCH": recorder.batch_callback(batch_size=100, batch_seconds=1)}
    schedule_from_answer(answer, "CREATE", callbacks, recorder.context, countdown_seconds=0.5)
    outcomes = recorder.wait(7, timeout_seconds=15)
    assert len({o["task_urn"] for o in outcomes}) == 7
    [batch] = recorder.batches()
    assert batch["size"] == 7
    decided = max(datetime.fromisoformat(o["decided_at"]).timestamp() for o in outcomes)
    # Sealed one second after the outcomes were added (after they were decided), then
    # found by a flusher that looks at least twice a second.
    assert 0.9 <= batch["received_at"] - decided <= 3.0, batch["received_at"] - decided


def test_a_sealed_batch_whose_sender_died_is_sent_by_a_flusher(
        recorder: Recorder, store: redis.Redis) -> None:
    fleet = runtime()
    spec = fleet.batches.spec(recorder.batch_callback(batch_size=3, batch_seconds=60))
    items = [fake_outcome(recorder, i) for i in range(3)]
    [sealed_id] = fleet.batches.append(spec, items)
    # The process died here, before publishing, a while ago.
    store.zadd(keys.BATCHES_SEALED_AT, {sealed_id: (time.time() - 60) * 1000})
    # Its verification runs again: the outcomes are in a batch already.
    assert fleet.batches.append(spec, items) == []
    outcomes = recorder.wait(3, timeout_seconds=10, settle_seconds=1)
    assert_each_once(outcomes, [o["task_urn"] for _, o in items])
    [batch] = recorder.batches()
    assert batch["task_id"] == batch_task_id(sealed_id)
    assert store.hget(keys.BATCHES_SEALED, sealed_id) is None
    assert store.zscore(keys.BATCHES_SEALED_AT, sealed_id) is None


def test_batch_and_default_callbacks_both_fire(sandbox: SandboxState,
                                               recorder: Recorder) -> None:
    sandbox.config.in_progress_seconds = 0
    # Three to verify, one refused at posting time (its FAILED outcome is sent at once).
    answer = post([job(), job(), job(title=None), job()], "CREATE")
    callbacks = {"DEFAULT": "tests.record_outcome",
                 "BATCH": recorder.batch_callback(batch_size=2, batch_seconds=1)}
    scheduled = schedule_from_answer(answer, "CREATE", callbacks, recorder.context,
                                     countdown_seconds=0.5)
    outcomes = recorder.wait(8, timeout_seconds=15)
    names = task_urns(answer) + ["element 2"]
    assert_each_once([o for o in outcomes if "_batch" in o], names)
    assert_each_once([o for o in outcomes if "_batch" not in o], names)
    assert sorted(recorder.callback_ids()) == sorted(
        [callback_task_id(keys.outcome_key(urn)) for urn in task_urns(answer)]
        + [callback_task_id(keys.refused_outcome_key(scheduled["verification_id"], 2))])
    sizes = [b["size"] for b in recorder.batches()]
    assert sum(sizes) == 4 and max(sizes) <= 2, sizes


def _append_in_chunks(spec: BatchSpec, part: list[tuple[str, dict[str, Any]]]) -> None:
    fleet, start = runtime(), 0
    for size in random.Random(len(part)).choices([1, 2, 3, 9], k=len(part)):
        if start >= len(part):
            break
        publish_batches(app, fleet, fleet.batches.append(spec, part[start:start + size]))
        start += size
        time.sleep(0.002)


def _flush_until(stop: threading.Event) -> None:
    fleet = runtime()
    while not stop.is_set():
        found = fleet.batches.flush()
        publish_batches(app, fleet, found.sealed + found.stale)
        time.sleep(0.005)


def test_concurrent_appends_and_flushes_seal_each_outcome_once(recorder: Recorder) -> None:
    spec = runtime().batches.spec(recorder.batch_callback(batch_size=7, batch_seconds=0.05))
    items = [fake_outcome(recorder, i) for i in range(400)]
    stop = threading.Event()
    # Eight appenders and three flushers here; the workers' own flushers take part too.
    with ThreadPoolExecutor(max_workers=11) as pool:
        flushers = [pool.submit(_flush_until, stop) for _ in range(3)]
        appenders = [pool.submit(_append_in_chunks, spec, items[i::8]) for i in range(8)]
        try:
            for future in appenders:
                future.result()
            outcomes = recorder.wait(400, timeout_seconds=20, settle_seconds=1)
        finally:
            stop.set()
        for future in flushers:
            future.result()
    assert_each_once(outcomes, [o["task_urn"] for _, o in items])
    batches = recorder.batches()
    assert len({b["task_id"] for b in batches}) == len(batches)
    assert max(b["size"] for b in batches) <= 7


def test_a_batch_is_sealed_by_bytes_as_well_as_by_count(recorder: Recorder) -> None:
    fleet = runtime()
    spec = fleet.batches.spec(recorder.batch_callback(batch_size=MAX_BATCH_SIZE, batch_seconds=1))
    items = []
    for index in range(1_500):
        key, outcome = fake_outcome(recorder, index)
        items.append((key, {**outcome, "error_message": "x" * 1_000}))
    sealed = fleet.batches.append(spec, items)
    assert sealed, "1,500 outcomes of 1 KB each filled no batch of at most 1 MiB"
    for batch in fleet.batches.sealed(sealed):
        assert sum(len(json.dumps(o)) for o in batch.outcomes) <= MAX_BATCH_BYTES
    publish_batches(app, fleet, sealed)
    outcomes = recorder.wait(1_500, timeout_seconds=20)
    assert_each_once(outcomes, [o["task_urn"] for _, o in items])
    smallest = min(len(json.dumps(o)) for _, o in items)
    assert max(b["size"] for b in recorder.batches()) <= MAX_BATCH_BYTES // smallest
