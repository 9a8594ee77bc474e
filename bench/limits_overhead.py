"""What the shared token, rate limit and daily quota cost per LinkedIn call.

Runs status calls against the sandbox (in this process, real HTTP) twice in one run: with
a fixed token and no limits, and with jobops' shared token and limiter on a real Redis.
Reports microseconds and Redis round trips per call, and the cost of token() + acquire()
alone. Writes bench/results/limits_overhead.json.

    .venv/bin/python -m bench.limits_overhead [--calls 2000]

Redis: JOBOPS_BENCH_REDIS_URL, default database 14 of the local server (flushed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Any

import redis
import requests
from redis.connection import Connection

from jobops.linkedin.oauth import request_token
from jobops.linkedin.status import StatusClient
from jobops.state.limits import Limiter
from jobops.state.tokens import SharedTokenCache
from sandbox import SandboxConfig, SandboxServer, SandboxState

RESULTS = Path(__file__).parent / "results" / "limits_overhead.json"


class RoundTrips:
    """Counts what goes over the wire to Redis: one per command or pipeline."""

    def __init__(self) -> None:
        self.count = 0
        original = Connection.send_packed_command

        def counting(conn: Connection, *args: Any, **kwargs: Any) -> None:
            self.count += 1
            original(conn, *args, **kwargs)

        Connection.send_packed_command = counting  # type: ignore[method-assign]


class FixedToken:
    def __init__(self, token: str) -> None:
        self._token = token

    def token(self) -> str:
        return self._token

    def invalidate(self, token: str) -> None:
        raise AssertionError("the benchmark's token was refused")


class NoLimits:
    def acquire(self) -> int:
        return 0

    def pause(self, seconds: float | None) -> float:
        return 0.0


def timed_calls(client: StatusClient, urns: list[str], calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        client.fetch(urns, time.time())
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    store = redis.Redis.from_url(os.environ.get("JOBOPS_BENCH_REDIS_URL",
                                                "redis://127.0.0.1:6379/14"))
    store.flushdb()
    state = SandboxState(SandboxConfig(in_progress_seconds=0))
    server = SandboxServer(state)
    server.start_in_thread()
    session = requests.Session()
    token_url = server.url + "/oauth/v2/accessToken"
    fetch = partial(request_token, session, token_url, "sandbox-client", "sandbox-secret", 5.0)
    token, _ = fetch()
    answer = session.post(server.url + "/v2/simpleJobPostings", headers={
        "Authorization": f"Bearer {token}", "x-restli-method": "batch_create"}, json={
        "elements": [{"externalJobPostingId": f"bench-{i}", "title": "Engineer",
                      "description": "x" * 120, "companyApplyUrl": "https://example.com",
                      "location": "Dublin, Ireland", "listedAt": 0,
                      "jobPostingOperationType": "CREATE"} for i in range(54)]}).json()
    urns = [element["id"] for element in answer["elements"]]

    trips = RoundTrips()
    plain = StatusClient(session, server.url, FixedToken(token), NoLimits(), 5.0)
    tokens = SharedTokenCache(store, fetch, refresh_margin_seconds=60, lock_timeout_seconds=10)
    limiter = Limiter(store, calls_per_second=1_000_000, daily_limit=10**9, reserve=0,
                      max_wait_seconds=1)
    limited = StatusClient(session, server.url, tokens, limiter, 5.0)

    before = trips.count
    limited.fetch(urns, time.time())
    first_call_round_trips = trips.count - before

    timed_calls(plain, urns, 100)  # warm-up of both paths
    timed_calls(limited, urns, 100)
    # Interleaved halves, so drift on a shared machine hits both sides alike.
    plain_samples: list[float] = []
    limited_samples: list[float] = []
    before = trips.count
    for _ in range(2):
        plain_samples += timed_calls(plain, urns, args.calls // 2)
        limited_samples += timed_calls(limited, urns, args.calls // 2)
    round_trips_per_call = (trips.count - before) / len(limited_samples)

    alone = []
    for _ in range(args.calls):
        start = time.perf_counter()
        tokens.token()
        limiter.acquire()
        alone.append(time.perf_counter() - start)

    def micros(samples: list[float]) -> dict[str, float]:
        ordered = sorted(samples)
        return {"median": round(statistics.median(ordered) * 1e6, 1),
                "p99": round(ordered[int(len(ordered) * 0.99) - 1] * 1e6, 1)}

    result = {
        "what": "status call with 54 URNs against the in-process sandbox",
        "calls_per_side": len(plain_samples),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "call_without_limits_us": micros(plain_samples),
        "call_with_shared_token_rate_and_quota_us": micros(limited_samples),
        "overhead_us_median": round((statistics.median(limited_samples)
                                     - statistics.median(plain_samples)) * 1e6, 1),
        "token_and_permit_alone_us": micros(alone),
        "redis_round_trips_per_call_steady": round(round_trips_per_call, 3),
        "redis_round_trips_first_call_with_token_refresh": first_call_round_trips,
    }
    server.shutdown()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
