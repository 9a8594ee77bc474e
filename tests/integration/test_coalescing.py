"""Coalesced polling: single-job operations share calls, and every outcome still fires once."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable

import pytest

from jobops.keys import run_key
from jobops.urns import encode_id_param
from sandbox import SandboxState
from tests.conftest import Recorder
from tests.jobs import job, post, posted_urns, task_urns
from workers import app
from workers.runtime import runtime

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


@pytest.mark.parametrize("coalesce", ["1", "0"])
def test_single_job_operations_share_their_calls(
        sandbox: SandboxState, recorder: Recorder, jobops_worker: Callable[..., str],
        coalesce: str) -> None:
    queue = jobops_worker(JOBOPS_COALESCE_POLLING=coalesce, JOBOPS_STATUS_FRESH_SECONDS="30")
    sandbox.config.in_progress_seconds = 0
    urns = posted_urns(400)
    before = len(sandbox.status_calls())
    rt = runtime()
    verifications = []
    for urn in urns:
        # As scheduling does: one verification per job, registered, its URN due.
        verification_id = str(uuid.uuid4())
        kwargs = {"task_urns": [urn], "operation": "CREATE",
                  "callbacks": recorder.callbacks, "context": recorder.context}
        rt.pending.expect(verification_id, kwargs, time.time() + 2)
        rt.share.expect([urn], time.time() + 2, verification_id)
        app.send_task("jobops.verify_job_operation", queue=queue, countdown=2,
                      kwargs=kwargs, task_id=verification_id)
        verifications.append(verification_id)
    outcomes = recorder.wait(400, timeout_seconds=90, settle_seconds=1)
    assert sorted(o["task_urn"] for o in outcomes) == sorted(urns)
    assert {o["status"] for o in outcomes} == {"SUCCEEDED"}
    calls = len(sandbox.status_calls()) - before
    if coalesce == "1":
        per_call = (4096 + 1) // (len(encode_id_param(urns[0])) + 1)
        ids = [c.ids for c in sandbox.status_calls()[before:]]
        assert calls <= math.ceil(400 / 40), f"{calls} calls for 400 URNs: {ids}"
        assert calls >= math.ceil(400 / per_call)
        # Most verifications were settled by the run whose call answered for them.
        settled = [v for v in rt.redis.mget([run_key(i, 0) for i in verifications])
                   if v is not None and v.startswith(b"done:by:")]
        assert len(settled) >= 300, f"{len(settled)} of 400 settled by another run"
    else:
        assert calls == 400
    deadline = time.monotonic() + 10
    while rt.pending.count() != (0, 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rt.pending.count() == (0, 0), "every verification is finished and forgotten"


def test_a_companion_is_settled_for_its_owner_only_when_safe(
        sandbox: SandboxState, recorder: Recorder, jobops_worker: Callable[..., str]) -> None:
    """A run whose call answers another verification's URNs delivers them for it, but not
    for a verification whose round runs elsewhere, nor one only partly answered."""
    queue = jobops_worker(JOBOPS_STATUS_FRESH_SECONDS="30")
    sandbox.config.in_progress_seconds = 0
    rt = runtime()
    singles = posted_urns(60)
    busy_urn = posted_urns(1)[0]
    partly = task_urns(post([job(), job()], "CREATE"))
    held = sandbox.task(partly[1]).external_id
    sandbox.hold(held)
    operations = [[urn] for urn in singles] + [[busy_urn], partly]
    ids = [str(uuid.uuid4()) for _ in operations]
    busy_id, partly_id = ids[-2], ids[-1]
    # The busy verification's round is held by another copy for 3 s (as if running).
    rt.redis.set(run_key(busy_id, 0), "running:elsewhere", px=3000)
    for verification_id, urns in zip(ids, operations, strict=True):
        kwargs = {"task_urns": urns, "operation": "CREATE",
                  "callbacks": recorder.callbacks, "context": recorder.context}
        rt.pending.expect(verification_id, kwargs, time.time() + 1)
        rt.share.expect(urns, time.time() + 1, verification_id)
        app.send_task("jobops.verify_job_operation", queue=queue, countdown=1,
                      kwargs=kwargs, task_id=verification_id)

    outcomes = recorder.wait(len(singles) + 2, timeout_seconds=60, settle_seconds=1)
    assert sorted(o["task_urn"] for o in outcomes) == sorted([*singles, busy_urn, partly[0]])
    asked_with_others = [c for c in sandbox.status_calls()
                         if busy_urn in c.asked() and len(c.asked()) > 1]
    assert asked_with_others, "the busy verification's URN rode in another run's call"
    # Both ran their rounds themselves; the partly answered one retries for its held URN.
    assert rt.redis.get(run_key(busy_id, 0)) == b"done"
    assert rt.redis.get(run_key(partly_id, 0)) == b"done"
    assert rt.pending.arguments([partly_id])[0]["task_urns"] == [partly[1]]
    settled = [v for v in rt.redis.mget([run_key(i, 0) for i in ids[:-2]])
               if v is not None and v.startswith(b"done:by:")]
    assert settled, "single-job verifications were settled by the runs that answered them"
