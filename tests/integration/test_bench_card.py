"""The benchmark's straightforward-card baseline works as its docstring says: one call per
4 KB query of an operation's URNs, a retry with what is still IN_PROGRESS, a callback per
URN — so comparing jobops with it compares like with like."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from sandbox import SandboxState
from tests.conftest import Recorder
from tests.jobs import posted_urns

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def test_the_card_baseline_asks_per_operation_and_retries_what_is_pending(
        sandbox: SandboxState, recorder: Recorder, bench_worker: Callable[[str], str]) -> None:
    from bench.card import app

    card_queue = bench_worker("bench.card")
    sandbox.config.in_progress_seconds = 0
    operations = [posted_urns(1), posted_urns(1), posted_urns(60)]
    held = operations[2][0]
    sandbox.hold(sandbox.task(held).external_id)  # IN_PROGRESS until released
    before = len(sandbox.status_calls())
    for urns in operations:
        app.send_task("card.verify_job_operation", queue=card_queue,
                      args=(urns, "CREATE", "tests.record_outcome", recorder.context))
    outcomes = recorder.wait(61, timeout_seconds=30, settle_seconds=0.5)
    everything = [urn for urns in operations for urn in urns]
    assert Counter(o["task_urn"] for o in outcomes) == Counter(u for u in everything
                                                               if u != held)
    calls = sandbox.status_calls()[before:]
    # The 60-URN operation in two 4 KB queries, the single ones in one each, then the held
    # URN alone, round after round.
    shared = [c.ids for c in calls if c.ids > 1]
    assert len(shared) == 2 and sum(shared) == 60, shared
    assert all(c.query_bytes <= 4096 for c in calls)
    assert calls[-1].asked() == [held]
