"""The test session's environment, set before anything reads settings."""

from __future__ import annotations

import os
import uuid

from jobops.dev.processes import free_port


def _redis_url() -> str:
    """The session's Redis database: JOBOPS_TEST_REDIS_URL's (13 by default), and under
    pytest-xdist one more for each further worker, so that each session flushes its own."""
    url = os.environ.get("JOBOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    offset = int(worker.removeprefix("gw") or 0)
    if not offset:
        return url
    base, _, database = url.rpartition("/")
    return f"{base}/{int(database or 0) + offset}"


REDIS_URL = _redis_url()
SANDBOX_PORT = free_port()
SANDBOX_URL = f"http://127.0.0.1:{SANDBOX_PORT}"
RUN = uuid.uuid4().hex[:8]
TEST_ENV = {
    "REDIS_URL": REDIS_URL,
    "LINKEDIN_API_URL": SANDBOX_URL,
    "LINKEDIN_TOKEN_URL": SANDBOX_URL + "/oauth/v2/accessToken",
    "LINKEDIN_CLIENT_ID": "sandbox-client",
    "LINKEDIN_CLIENT_SECRET": "sandbox-secret",
    "JOBOPS_QUEUE": f"jobops-test-{RUN}",
    "JOBOPS_CALLBACK_QUEUE": f"pipeline-test-{RUN}",
    "JOBOPS_FIRST_CHECK_SECONDS": "0.5",
    "JOBOPS_POLL_INTERVAL_SECONDS": "0.3",
    "JOBOPS_MAX_POLL_INTERVAL_SECONDS": "1",
    "JOBOPS_HTTP_TIMEOUT_SECONDS": "2",
    "JOBOPS_TOKEN_LOCK_SECONDS": "3",
    "JOBOPS_CALLS_PER_SECOND": "1000",
    "JOBOPS_DAILY_CALL_LIMIT": "100000000",
    "JOBOPS_QUOTA_RESERVE": "0",
    "JOBOPS_ALLOW_CLOCK_OVERRIDE": "1",
    "JOBOPS_RUN_LEASE_SECONDS": "4",
    "JOBOPS_SWEEP_INTERVAL_SECONDS": "2",
    # Fleet-wide pauses as in production, only shorter: 0.5-1 s, doubling up to 4 s.
    "JOBOPS_PAUSE_FIRST_SECONDS": "1",
    "JOBOPS_PAUSE_MAX_SECONDS": "4",
    # Every run writes its metrics at once, so a scrape right after the work sees them.
    "JOBOPS_METRICS_FLUSH_SECONDS": "0",
}
os.environ.update(TEST_ENV)

