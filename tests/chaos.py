"""The chaos run: thousands of URNs while worker processes die, Redis restarts and the API lies.

    .venv/bin/python -m tests.chaos [--urns 2000] [--kills 12] [--fault-rate 0.10]

Starts its own Redis (append-only persistence and a password, as production would run
it), the sandbox with injected faults, three jobops workers and a callback consumer. It
schedules single-job and 100-job operations, then kill -9s a random worker process every
few seconds (every fourth kill takes a whole worker down, which is then restarted), and
restarts Redis once. The consumer de-duplicates by callback task id, as the README
advises. It prints URNs scheduled, outcomes delivered, lost, duplicated, wrong, writes
bench/results/chaos.json, and exits 1 unless lost, duplicated and wrong are all 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from jobops.processes import free_port, start_worker, stop, wait_ready
from sandbox import SandboxConfig, SandboxServer, SandboxState

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results" / "chaos.json"
PASSWORD = "chaos-redis-password"
FAULTS = ("error_5xx", "timeout", "slow", "reset", "malformed", "truncated", "throttle",
          "revoke")


class RedisServer:
    """A Redis of the run's own, restartable, persisting to an append-only file."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server") or "redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--requirepass",
             PASSWORD, "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
             "--dir", str(self.workdir)],
            stdout=(self.workdir / "redis.log").open("ab"), stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("chaos Redis did not start")

    def restart(self) -> float:
        """Shut down (the append-only file is flushed) and start again; returns downtime."""
        started = time.monotonic()
        # Shutdown closes the connection as it goes.
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis.from_url(self.url).shutdown()
        assert self.process is not None
        self.process.wait(10)
        self.start()
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def children(pid: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    except FileNotFoundError:
        return []
    return [int(p) for p in out.stdout.split()]


def jobs_for(count: int, rng: random.Random, run: str) -> list[dict[str, Any]]:
    jobs = []
    for n in range(count):
        job: dict[str, Any] = {
            "externalJobPostingId": f"chaos-{run}-{rng.getrandbits(48):x}-{n}",
            "title": "Chaos Engineer",
            "description": ("Keeps systems honest. " * 6) if rng.random() > 0.1 else "Short.",
            "companyApplyUrl": "https://example.com/jobs",
            "location": "Dublin, Ireland" if rng.random() > 0.05 else "Atlantis",
            "listedAt": 0,
            "integrationContext": "urn:li:organization:1001",
        }
        if rng.random() < 0.25:
            job["alternateLocations"] = ["Cork, Ireland", "Galway, Ireland"]
        jobs.append(job)
    return jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urns", type=int, default=2000, help="about this many task URNs")
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--kill-every-seconds", type=float, default=2.5)
    parser.add_argument("--fault-rate", type=float, default=0.10)
    parser.add_argument("--timeout-seconds", type=float, default=300)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(10**6)
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="jobops-chaos-"))
    redis_server = RedisServer(workdir)
    redis_server.start()
    state = SandboxState(SandboxConfig(
        in_progress_seconds=1, in_progress_jitter_seconds=3, fault_timeout_seconds=2.5,
        fault_rates={kind: args.fault_rate / len(FAULTS) for kind in FAULTS}))
    server = SandboxServer(state)
    server.start_in_thread()
    env = {
        "REDIS_URL": redis_server.url,
        "LINKEDIN_API_URL": server.url,
        "LINKEDIN_TOKEN_URL": server.url + "/oauth/v2/accessToken",
        "LINKEDIN_CLIENT_ID": state.config.client_id,
        "LINKEDIN_CLIENT_SECRET": state.config.client_secret,
        "JOBOPS_QUEUE": "jobops-chaos",
        "JOBOPS_CALLBACK_QUEUE": "pipeline-chaos",
        "JOBOPS_FIRST_CHECK_SECONDS": "1",
        "JOBOPS_POLL_INTERVAL_SECONDS": "0.5",
        "JOBOPS_MAX_POLL_INTERVAL_SECONDS": "2",
        "JOBOPS_VISIBILITY_TIMEOUT_SECONDS": "20",
        "JOBOPS_HTTP_TIMEOUT_SECONDS": "2",
        "JOBOPS_TOKEN_LOCK_SECONDS": "3",
        "JOBOPS_CALLS_PER_SECOND": "200",
        "JOBOPS_QUOTA_RESERVE": "0",
        "JOBOPS_RUN_LEASE_SECONDS": "10",
        "JOBOPS_SWEEP_INTERVAL_SECONDS": "2",
    }
    os.environ.update(env)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        return _run(args, rng, seed, state, redis_server, env, workdir, workers)
    finally:
        for worker in workers:
            stop(worker, timeout_seconds=5)
        server.shutdown()
        redis_server.stop()


def _schedule(urns: int, rng: random.Random, run: str, env: dict[str, str],
              state: SandboxState) -> dict[str, str]:
    """Post and schedule single-job and 100-job operations; returns URN -> final status."""
    from tasks.scheduling import schedule_from_answer
    from tests.jobs import post_to

    big_batches = max(1, urns * 3 // 4 // 150)
    operations = [jobs_for(100, rng, run) for _ in range(big_batches)]
    operations += [jobs_for(1, rng, run) for _ in range(max(1, urns - big_batches * 150))]
    scheduled = 0
    for jobs in operations:
        answer = post_to(env["LINKEDIN_API_URL"], jobs, "CREATE")
        scheduled += schedule_from_answer(answer, "CREATE", {"DEFAULT": "chaos.record"},
                                          {"chaos": run})["task_urns"]
    print(f"scheduled {scheduled} URNs in {len(operations)} operations", flush=True)
    return {urn: task.final["status"] for urn, task in state.tasks_snapshot().items()}


def _start_jobops_worker(env: dict[str, str], workdir: Path, index: int
                         ) -> subprocess.Popen[bytes]:
    log_path = workdir / f"worker-{index}-{time.monotonic_ns()}.log"
    process = start_worker("workers", env["JOBOPS_QUEUE"], env, log_path, concurrency=2,
                           name=f"chaos-{index}-{time.monotonic_ns()}@%h")
    wait_ready(process, log_path)
    return process


def _run(args: argparse.Namespace, rng: random.Random, seed: int, state: SandboxState,
         redis_server: RedisServer, env: dict[str, str], workdir: Path,
         workers: list[subprocess.Popen[bytes]]) -> int:
    from tests.chaos_pipeline import OUTCOMES_KEY

    print(f"chaos run, seed {seed}, logs in {workdir}", flush=True)
    consumer_log = workdir / "consumer.log"
    workers.append(start_worker("tests.chaos_pipeline", env["JOBOPS_CALLBACK_QUEUE"], env,
                                consumer_log, concurrency=2, name="chaos-consumer@%h"))
    wait_ready(workers[-1], consumer_log)
    jobops = [_start_jobops_worker(env, workdir, i) for i in range(3)]
    workers.extend(jobops)

    expected = _schedule(args.urns, rng, f"{seed:x}", env, state)

    kills = 0
    redis_downtime = None
    crashes = 0
    store = redis.Redis.from_url(env["REDIS_URL"])

    def supervise() -> None:
        """Restart a worker that exited on its own, as compose or systemd would."""
        nonlocal crashes
        for index, process in enumerate(jobops):
            if process.poll() is not None:
                crashes += 1
                print(f"worker {index} exited by itself; restarting it", flush=True)
                jobops[index] = _start_jobops_worker(env, workdir, index)
                workers.append(jobops[index])

    while kills < args.kills:
        time.sleep(args.kill_every_seconds)
        supervise()
        index = rng.randrange(len(jobops))
        if kills % 4 == 3:
            os.killpg(jobops[index].pid, signal.SIGKILL)
            jobops[index].wait()
            replacement = _start_jobops_worker(env, workdir, index)
            workers.append(replacement)
            jobops[index] = replacement
            what = f"worker {index} (whole)"
        else:
            pool = children(jobops[index].pid)
            if not pool:
                continue
            os.kill(rng.choice(pool), signal.SIGKILL)
            what = f"a process of worker {index}"
        kills += 1
        print(f"kill {kills}: {what}", flush=True)
        if kills == args.kills // 2:
            redis_downtime = redis_server.restart()
            print(f"Redis restarted ({redis_downtime:.1f} s down)", flush=True)

    deadline = time.monotonic() + args.timeout_seconds
    while time.monotonic() < deadline:
        supervise()
        if _safe_llen(store, OUTCOMES_KEY) >= len(expected):
            break
        time.sleep(1)
    time.sleep(5)  # a late duplicate would show up now

    report = _report(store, expected, seed, kills, redis_downtime, crashes, state)
    return 0 if not (report["lost"] or report["duplicated"] or report["wrong"]) else 1


def _report(store: redis.Redis, expected: dict[str, str], seed: int, kills: int,
            redis_downtime: float | None, crashes: int, state: SandboxState
            ) -> dict[str, Any]:
    from tests.chaos_pipeline import DROPPED_KEY, OUTCOMES_KEY

    records = [json.loads(raw) for raw in store.lrange(OUTCOMES_KEY, 0, -1)]
    per_urn: dict[str, list[dict[str, Any]]] = {}
    for outcome in records:
        per_urn.setdefault(outcome["task_urn"], []).append(outcome)
    lost = sorted(set(expected) - set(per_urn))
    duplicated = sorted(urn for urn, got in per_urn.items() if len(got) > 1)
    wrong = sorted(urn for urn, got in per_urn.items()
                   if urn not in expected or got[0]["status"] != expected[urn])
    report = {
        "seed": seed,
        "urns_scheduled": len(expected),
        "outcomes_delivered": len(per_urn),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "wrong": len(wrong),
        "copies_dropped_by_consumer_dedup": int(store.get(DROPPED_KEY) or 0),
        "worker_kills": kills,
        "redis_restarts": 1 if redis_downtime is not None else 0,
        "workers_that_exited_by_themselves": crashes,
        "api_faults_injected": dict(state.faults),
        "status_calls": len(state.status_calls()),
        "examples": {"lost": lost[:5], "duplicated": duplicated[:5], "wrong": wrong[:5]},
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    for key in ("urns_scheduled", "outcomes_delivered", "lost", "duplicated", "wrong",
                "copies_dropped_by_consumer_dedup", "worker_kills", "redis_restarts",
                "workers_that_exited_by_themselves", "status_calls"):
        print(f"{key:>34}: {report[key]}")
    print(f"{'api_faults_injected':>34}: {report['api_faults_injected']}")
    return report


def _safe_llen(store: redis.Redis, key: str) -> int:
    try:
        return int(store.llen(key))
    except redis.RedisError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
