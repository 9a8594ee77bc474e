"""A rolling upgrade: workers of the last released jobops and of this one, side by side on
one queue, deliver every outcome once and put nothing off."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from jobops.dev.processes import start_worker, stop, wait_ready
from sandbox import SandboxState
from tests.conftest import Recorder
from tests.env import REDIS_URL, TEST_ENV
from tests.jobs import posted_urns

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]
ROOT = Path(__file__).resolve().parents[2]
#: The release a fleet upgrades from: the last main that landed before this state format.
#: JOBOPS_UPGRADE_FROM names another commit to try.
UPGRADE_FROM = os.environ.get("JOBOPS_UPGRADE_FROM",
                              (ROOT / "tests" / "upgrade_from.txt").read_text().strip())


@pytest.fixture
def old_release(tmp_path: Path) -> Iterator[Path]:
    """The old release's code, checked out beside this one."""
    tree = tmp_path / "old"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree),
                    UPGRADE_FROM], check=True, capture_output=True)
    yield tree
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                   capture_output=True)


def start_old_worker(tree: Path, queue: str, log_path: Path) -> subprocess.Popen[bytes]:
    """``celery -A workers worker`` run from the old tree, so it imports the old code."""
    env = {**os.environ, **TEST_ENV, "JOBOPS_QUEUE": queue, "PYTHONPATH": str(tree)}
    return subprocess.Popen(
        [sys.executable, "-m", "celery",
         "-A", "workers", "worker", "-Q", queue, "-c", "2", "--loglevel", "INFO",
         "--without-gossip", "--without-mingle", "-n", f"old-{uuid.uuid4().hex[:6]}@%h"],
        cwd=tree, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True)


def test_old_and_new_workers_share_a_queue_during_an_upgrade(
        old_release: Path, sandbox: SandboxState, recorder: Recorder,
        tmp_path: Path) -> None:
    queue = f"jobops-upgrade-{uuid.uuid4().hex[:8]}"
    old_log, new_log = tmp_path / "old.log", tmp_path / "new.log"
    old = start_old_worker(old_release, queue, old_log)
    new = start_worker("workers", queue, {**TEST_ENV, "JOBOPS_QUEUE": queue}, new_log,
                       concurrency=2)
    try:
        wait_ready(old, old_log)
        wait_ready(new, new_log)
        # Several rounds each, so rounds started by one release end on the other.
        sandbox.config.in_progress_seconds = 2
        singles, grouped = posted_urns(40), posted_urns(40)
        pipeline = Celery("pipeline", broker=REDIS_URL)
        try:
            for task_urns in [[u] for u in singles] + [grouped[:20], grouped[20:]]:
                pipeline.send_task(
                    "jobops.verify_job_operation", queue=queue, countdown=0, kwargs={
                        "task_urns": task_urns, "operation": "CREATE",
                        "callbacks": recorder.callbacks, "context": recorder.context})
        finally:
            pipeline.close()
        started = time.monotonic()
        outcomes = recorder.wait(80, timeout_seconds=60, settle_seconds=3)
    finally:
        stop(old)
        stop(new)
    assert Counter(o["task_urn"] for o in outcomes) == Counter(singles + grouped)
    assert {o["status"] for o in outcomes} == {"SUCCEEDED"}
    assert len(set(recorder.callback_ids())) == len(recorder.callback_ids()) == 80
    assert time.monotonic() - started < 60
    for log_path in (old_log, new_log):
        text = log_path.read_text(errors="replace")
        assert " round " in text, f"{log_path.name} ran no round"
        assert "Traceback" not in text, f"{log_path.name}: {text[-2000:]}"
        # A round one release cannot read is put off, not run twice; but nothing here
        # needs a wait longer than the suite's poll steps.
        put_off = [float(s) for s in re.findall(r"Retry in ([0-9.]+)s", text)
                   if float(s) > 30]
        assert put_off == [], f"{log_path.name} put rounds off by {put_off[:5]} s"
