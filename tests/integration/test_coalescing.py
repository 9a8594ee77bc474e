"""Coalesced polling: single-job operations share calls, and every outcome still fires once."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable

import pytest

from jobops.core.urns import encode_id_param
from jobops.state import keys
from jobops.state.keys import run_key
from sandbox import SandboxState
from tests.conftest import Recorder
from tests.jobs import job, post, posted_urns, task_urns
from workers import app
from workers.runtime import runtime

SETTLED_METRIC = "jobops_settled_for_others_total"
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


@pytest.mark.parametrize("coalesce", ["1", "0"])
def test_single_job_operations_share_their_calls(
        sandbox: SandboxState, recorder: Recorder, jobops_worker: Callable[..., str],
        coalesce: str) -> None:
    queue = jobops_worker(JOBOPS_COALESCE_POLLING=coalesce, JOBOPS_STATUS_FRESH_SECONDS="30")
    sandbox.config.in_progress_seconds = 0
    # Enough URNs that the last few calls, which carry what is left, weigh little.
    count = 800 if coalesce == "1" else 200
    urns = posted_urns(count)
    before = len(sandbox.status_calls())
    fleet = runtime()
    counted_before = float(fleet.redis.hget(keys.METRICS, SETTLED_METRIC) or 0)
    verifications = [str(uuid.uuid4()) for _ in urns]
    kwargs = [{"task_urns": [urn], "operation": "CREATE", "callbacks": recorder.callbacks,
               "context": recorder.context} for urn in urns]
    # As scheduling does (one verification per job, registered, its URN due), for all
    # URNs before the first is sent: a burst arriving together, whose first runs would
    # otherwise start while the last are still being registered.
    with fleet.redis.pipeline(transaction=False) as pipe:
        for verification_id, urn, arguments in zip(verifications, urns, kwargs, strict=True):
            fleet.pending.expect(verification_id, arguments, time.time() + 2, pipe)
            if coalesce == "1":  # as the scheduler does: with coalescing off, nothing is due
                fleet.status_cache.expect([urn], time.time() + 2, verification_id, pipe)
        pipe.execute()
    for verification_id, arguments in zip(verifications, kwargs, strict=True):
        app.send_task("jobops.verify_job_operation", queue=queue, countdown=2,
                      kwargs=arguments, task_id=verification_id)
    outcomes = recorder.wait(count, timeout_seconds=90, settle_seconds=1)
    assert sorted(o["task_urn"] for o in outcomes) == sorted(urns)
    assert {o["status"] for o in outcomes} == {"SUCCEEDED"}
    # Calls about this test's URNs: verifications other tests of the session left
    # running may call too.
    own = set(urns)
    mine = [c for c in sandbox.status_calls()[before:] if own.intersection(c.asked())]
    calls = len(mine)
    if coalesce == "1":
        per_call = (4096 + 1) // (len(encode_id_param(urns[0])) + 1)
        ids = [c.ids for c in mine]
        assert calls <= math.ceil(count / 40), f"{calls} calls for {count} URNs: {ids}"
        assert calls >= math.ceil(count / per_call)
        # Most verifications were settled by the run whose call answered for them.
        settled = [v for v in fleet.redis.mget([run_key(i, 0) for i in verifications])
                   if v is not None and v.startswith(b"done:by:")]
        assert len(settled) >= count * 3 // 4, \
            f"{len(settled)} of {count} settled by another run"
        counted = float(fleet.redis.hget(keys.METRICS, SETTLED_METRIC) or 0) - counted_before
        assert counted >= len(settled)
    else:
        assert calls == count
    deadline = time.monotonic() + 10
    while (left := [v for v, a in zip(verifications, fleet.pending.arguments(verifications),
                                      strict=True) if a is not None]) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == [], "every verification is finished and forgotten"


def test_a_companion_is_settled_for_its_owner_only_when_safe(
        sandbox: SandboxState, recorder: Recorder, jobops_worker: Callable[..., str]) -> None:
    """A run whose call answers another verification's URNs delivers them for it, with
    that verification's own context and callbacks; but not for a verification whose round
    runs elsewhere, nor for one only partly answered."""
    queue = jobops_worker(JOBOPS_STATUS_FRESH_SECONDS="30")
    sandbox.config.in_progress_seconds = 0
    fleet = runtime()
    singles = posted_urns(60)
    busy_urn = posted_urns(1)[0]
    partly = task_urns(post([job(), job()], "CREATE"))
    sandbox.hold(sandbox.task(partly[1]).external_id)
    rec = "tests.record_outcome"
    kinds = [{"DEFAULT": rec, "JOB_COMPLETE": rec}, {"BATCH": recorder.batch_callback(10, 0.5)},
             {"DEFAULT": rec}]
    operations = [([urn], kinds[i % 3], 1.0) for i, urn in enumerate(singles)]
    # The partly answered one runs last, after the single-job runs' calls took its URNs.
    operations += [([busy_urn], {"DEFAULT": rec}, 1.0), (partly, {"DEFAULT": rec}, 5.0)]
    ids = [str(uuid.uuid4()) for _ in operations]
    busy_id, partly_id = ids[-2], ids[-1]
    # The busy verification's round is held by another copy for 3 s (as if running).
    fleet.redis.set(run_key(busy_id, 0), "running:elsewhere", px=3000)
    arguments = [{"task_urns": urns, "operation": "CREATE", "callbacks": callbacks,
                  "context": {**recorder.context, "op": n}}
                 for n, (urns, callbacks, _) in enumerate(operations)]
    # Every URN is listed as due before the first run can start (as the scheduler does
    # for one request): a run that started while the last were still being registered
    # would find nothing of theirs to carry, however the machine is loaded. The busy and
    # the partly answered ones first: a call carries the soonest due, so the first
    # single-job run's call carries theirs, whichever run it is and however many calls
    # the singles take.
    for n in [len(ids) - 2, len(ids) - 1, *range(len(ids) - 2)]:
        fleet.pending.expect(ids[n], arguments[n], time.time() + 1)
        fleet.status_cache.expect(arguments[n]["task_urns"], time.time() + 1, ids[n])
    for verification_id, kwargs, (_, _, countdown) in zip(ids, arguments, operations,
                                                          strict=True):
        app.send_task("jobops.verify_job_operation", queue=queue, countdown=countdown,
                      kwargs=kwargs, task_id=verification_id)

    summaries = len(range(0, 60, 3))
    received = recorder.wait(len(singles) + 2 + summaries, timeout_seconds=60,
                             settle_seconds=1.5)
    outcomes = [o for o in received if o.get("kind") != "job_summary"]
    assert sorted(o["task_urn"] for o in outcomes) == sorted([*singles, busy_urn, partly[0]])
    op_of = {urn: n for n, (urns, _, _) in enumerate(operations) for urn in urns}
    for outcome in outcomes:
        assert outcome["context"]["op"] == op_of[outcome["task_urn"]]
        assert ("_batch" in outcome) == (op_of[outcome["task_urn"]] % 3 == 1 and
                                         outcome["task_urn"] in singles)
    summary_ops = sorted(o["context"]["op"] for o in received if o.get("kind") == "job_summary")
    assert summary_ops == list(range(0, 60, 3))

    def rode_with_singles(urn: str) -> bool:
        return any(urn in c.asked() and set(c.asked()) & set(singles)
                   for c in sandbox.status_calls())
    assert rode_with_singles(busy_urn) and rode_with_singles(partly[0])
    # Both ran their rounds themselves; the partly answered one retries for its held URN.
    assert fleet.redis.get(run_key(busy_id, 0)) == b"done"
    assert fleet.redis.get(run_key(partly_id, 0)) == b"done"
    assert fleet.pending.arguments([partly_id])[0]["task_urns"] == [partly[1]]
    settled = [v for v in fleet.redis.mget([run_key(i, 0) for i in ids[:-2]])
               if v is not None and v.startswith(b"done:by:")]
    assert len(settled) >= 30, f"{len(settled)} of 60 settled by the run that answered them"
