"""A machine without Redis: a local run still runs the unit tests and says why the rest
were skipped; under CI the same run fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOBODY = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def run_pytest(ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_XDIST_WORKER")}
    env["JOBOPS_TEST_REDIS_URL"] = NOBODY
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-o", "addopts=", "-p", "no:cacheprovider", "-rs",
         "tests/unit/test_urns.py", "tests/integration/test_scripts.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_a_local_run_skips_what_needs_redis_and_says_how_to_start_it() -> None:
    done = run_pytest(ci=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout and "1 skipped" in done.stdout
    assert f"Redis does not answer at {NOBODY}" in done.stdout
    assert "scripts/ensure-redis" in done.stdout


def test_under_ci_a_missing_redis_fails_the_run() -> None:
    done = run_pytest(ci=True)
    assert done.returncode != 0
    assert f"Redis does not answer at {NOBODY}" in done.stdout + done.stderr
    assert "CI is set" in done.stdout + done.stderr
