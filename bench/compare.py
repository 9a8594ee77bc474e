"""jobops against fair baselines, end to end, in one run.

Every run is real: a Redis server of the benchmark's own, the sandbox over HTTP (in this
process), a verification worker, a separate pipeline worker whose callback records when
each outcome arrived, and a separate sender process (``bench.sender``, a bare Celery app
that never imports jobops) that sends each operation's verification while the workers
run — scheduling is inside the clock. Implementations:

    jobops           jobops.verify_job_operation sent by name (the card's path)
    jobops_schedule  jobops.schedule_verification sent by name with the POST answer
    jobops_x10       by name, JOBOPS_CALLS_PER_SECOND raised tenfold (100)
    jobops_batch     by name, BATCH callbacks (not run unless asked)
    card             bench.card: the straightforward card (a task and ≤ 4 KB GETs per operation)
    naive            bench.naive: a task and a GET per URN
    floor            bench.floor: jobops' task and callback shapes, no HTTP, no state

Phases:

    capacity  5,000 URNs sent as fast as the sender can (as 5,000 single-job operations
              and as 50 of 100), first check at once, at 1, 2 and 4 worker processes
    steady    50 operations/s for 3 minutes (single-job; and a mix where one in 50 has
              100 jobs), first check counted down 5 s, 30% IN_PROGRESS for 5 s (three
              checks at the 2 s poll interval), 2 worker processes
    pending   100,000 URNs scheduled an hour ahead: worker and Redis memory

    .venv/bin/python -m bench.compare [--phases capacity steady pending] [--quick]

Writes bench/results/compare.json and compare.png; prints each target against its figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis

from jobops.dev.processes import free_port, start_redis, start_worker, stop, wait_ready
from sandbox import SandboxConfig, SandboxServer, SandboxState

RESULTS = Path(__file__).parent / "results"
QUEUE = "bench-verify"
CALLBACK_QUEUE = "bench-pipeline"
# Production's 60 s poll interval, 300 s first check and 60 s freshness, scaled down.
POLL_SECONDS = 2.0
STEADY_COUNTDOWN_SECONDS = 5.0
IN_PROGRESS_SECONDS = 5.0
# How long a worker's idle CPU is measured, before each run's sender starts.
IDLE_SECONDS = 5.0
DESCRIPTION = "A role for people who like building reliable systems. " * 3


@dataclass(frozen=True)
class Implementation:
    name: str
    app: str
    env: dict[str, str] = field(default_factory=dict)
    sender: str = ""

    @property
    def sends_as(self) -> str:
        return self.sender or self.name


IMPLEMENTATIONS = {i.name: i for i in (
    Implementation("jobops", "workers"),
    Implementation("jobops_schedule", "workers"),
    Implementation("jobops_x10", "workers", {"JOBOPS_CALLS_PER_SECOND": "100"}, "jobops"),
    Implementation("jobops_batch", "workers"),
    Implementation("card", "bench.card"),
    Implementation("naive", "bench.naive"),
    Implementation("floor", "bench.floor"),
)}
JOBOPS = ("jobops", "jobops_schedule", "jobops_x10", "jobops_batch")
DEFAULT_IMPLEMENTATIONS = ("jobops", "jobops_schedule", "jobops_x10", "card", "naive",
                           "floor")


@dataclass(frozen=True)
class Workload:
    name: str
    phase: str
    # Every ``big_every``-th operation carries ``big_size`` URNs, the others one.
    big_every: int = 0
    big_size: int = 100
    countdown_seconds: float = 0.0
    in_progress_share: float = 0.0
    in_progress_seconds: float = IN_PROGRESS_SECONDS

    def sizes(self, operations: int) -> list[int]:
        return [self.big_size if self.big_every and i % self.big_every == self.big_every - 1
                else 1 for i in range(operations)]


WORKLOADS = {w.name: w for w in (
    Workload("single", "capacity"),
    Workload("hundreds", "capacity", big_every=1),
    Workload("steady_single", "steady", countdown_seconds=STEADY_COUNTDOWN_SECONDS,
             in_progress_share=0.3),
    Workload("steady_mixed", "steady", big_every=50,
             countdown_seconds=STEADY_COUNTDOWN_SECONDS, in_progress_share=0.3),
)}


@dataclass
class Run:
    implementation: str
    workload: str
    phase: str
    processes: int
    urns: int
    operations: int
    # From the sender's first operation to the last callback: scheduling included.
    seconds: float = 0.0
    urns_per_second: float = 0.0
    sending_seconds: float = 0.0
    status_calls: int = 0
    calls_per_urn: float = 0.0
    urns_per_call: float = 0.0
    # Checks an ideal poller needs: one per URN, and one per poll interval a URN stays
    # IN_PROGRESS after its first.
    urn_rounds: int = 0
    calls_per_40_urn_rounds: float = 0.0
    token_requests: int = 0
    worker_cpu_seconds: float = 0.0
    worker_cpu_per_1000_urns: float = 0.0
    worker_main_cpu_seconds: float = 0.0
    pipeline_cpu_seconds: float = 0.0
    callbacks_received: int = 0
    duplicates: int = 0
    missing: int = 0
    p50_flip_to_callback_ms: float = 0.0
    p99_flip_to_callback_ms: float = 0.0
    in_progress_p50_ms: float | None = None
    in_progress_p99_ms: float | None = None
    # Against each URN's first check's due time: when it was first asked about, and when
    # its callback ran (p50, p99).
    asked_after_due_ms: tuple[float, float] | None = None
    callback_after_due_ms: tuple[float, float] = (0.0, 0.0)
    # The worker's CPU while idle, before the sender starts (timers, threads, polling):
    # a cost per second, not per URN, which the steady runs' CPU per URN includes.
    worker_idle_cpu_share: float = 0.0
    worker_pss_idle_mb: float = 0.0
    worker_pss_peak_mb: float = 0.0
    # Redis' growth split, by least squares over the samples (ramp, steady state, drain),
    # into what each pending URN holds and what each delivered one leaves (its records).
    redis_bytes_per_pending_urn: float | None = None
    redis_bytes_per_done_urn: float | None = None
    pending_urns_median: float | None = None
    # Every client's (workers, pipeline, sender), from Redis' INFO commandstats.
    redis_commands_per_urn: float = 0.0
    redis_commands_top: dict[str, float] = field(default_factory=dict)


def bench_env(redis_url: str, sandbox_url: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "LINKEDIN_API_URL": sandbox_url,
        "LINKEDIN_TOKEN_URL": sandbox_url + "/oauth/v2/accessToken",
        "LINKEDIN_CLIENT_ID": "sandbox-client",
        "LINKEDIN_CLIENT_SECRET": "sandbox-secret",
        "JOBOPS_QUEUE": QUEUE,
        "JOBOPS_CALLBACK_QUEUE": CALLBACK_QUEUE,
        "JOBOPS_FIRST_CHECK_SECONDS": str(STEADY_COUNTDOWN_SECONDS),
        "JOBOPS_POLL_INTERVAL_SECONDS": str(POLL_SECONDS),
        "JOBOPS_MAX_POLL_INTERVAL_SECONDS": str(POLL_SECONDS),
        "JOBOPS_STATUS_FRESH_SECONDS": str(POLL_SECONDS),
        "JOBOPS_BATCH_SIZE": "100",
        "JOBOPS_BATCH_SECONDS": "0.5",
        # JOBOPS_CALLS_PER_SECOND and the daily quota stay at their defaults (10/s,
        # 300,000): what a fleet runs with.
    }


def tree(pid: int) -> list[psutil.Process]:
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def cpu_split(pid: int) -> tuple[float, float]:
    """CPU seconds of a worker's main process, and of its pool processes."""
    main = children = 0.0
    for process in tree(pid):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        if process.pid == pid:
            main += times.user + times.system
        else:
            children += times.user + times.system
    return main, children


def memory_mb(pid: int) -> dict[str, float]:
    """Resident and proportional (shared pages split between processes) memory, in MB."""
    rss = pss = 0.0
    for process in tree(pid):
        try:
            info = process.memory_full_info()
        except psutil.NoSuchProcess:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return {"rss_mb": round(rss / 2**20, 1), "pss_mb": round(pss / 2**20, 1)}


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def per_pending_and_done(samples: list[dict[str, float]]) -> tuple[float, float] | None:
    """Bytes per pending and per delivered URN: ``redis_bytes = a * pending + b * done``
    fitted by least squares; None when the samples cannot tell the two apart."""
    pp = sum(s["pending"] ** 2 for s in samples)
    dd = sum(s["done"] ** 2 for s in samples)
    pd = sum(s["pending"] * s["done"] for s in samples)
    py = sum(s["pending"] * s["redis_bytes"] for s in samples)
    dy = sum(s["done"] * s["redis_bytes"] for s in samples)
    determinant = pp * dd - pd * pd
    if len(samples) < 5 or determinant <= 1e-9 * pp * dd:
        return None
    return (round((py * dd - dy * pd) / determinant, 1),
            round((dy * pp - py * pd) / determinant, 1))


class Sampler(threading.Thread):
    """Worker memory and Redis growth per pending URN, every ``every`` seconds."""

    def __init__(self, store: redis.Redis, worker_pid: int, redis_baseline: int,
                 every: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.store, self.worker_pid, self.baseline = store, worker_pid, redis_baseline
        self.every = every
        self.samples: list[dict[str, float]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.every):
            sent = int(self.store.get("bench:sent") or 0)
            done = int(self.store.hlen("bench:done"))
            ours = sum(int(self.store.memory_usage(k) or 0)
                       for k in ("bench:done", "bench:sent", "bench:copies"))
            used = int(self.store.info("memory")["used_memory"])
            self.samples.append({"at": time.time(), "pending": sent - done, "done": done,
                                 "redis_bytes": used - self.baseline - ours,
                                 "pss_mb": memory_mb(self.worker_pid)["pss_mb"]})


class Bench:
    def __init__(self, workdir: Path, profile: bool = False) -> None:
        self.workdir = workdir
        self.profile = profile
        self.redis_process, self.redis_url = start_redis(workdir)
        self.store = redis.Redis.from_url(self.redis_url)
        self.server = SandboxServer(SandboxState(SandboxConfig()), port=free_port())
        self.server.start_in_thread()
        self.env = bench_env(self.redis_url, self.server.url)
        # The pending phase schedules from this process, with the workers' settings.
        os.environ.update(self.env)

    def close(self) -> None:
        self.server.shutdown()
        stop(self.redis_process)

    def fresh_sandbox(self, workload: Workload) -> SandboxState:
        state = SandboxState(SandboxConfig(
            in_progress_seconds=workload.in_progress_seconds,
            in_progress_share=workload.in_progress_share,
            in_progress_from_first_check=True,
            token_lifetime_seconds=86_400,
        ))
        self.server.state = state
        return state

    @staticmethod
    def post(state: SandboxState, count: int) -> list[str]:
        """``count`` single-location CREATEs, posted 100 at a time; their task URNs."""
        token = state.issue_token({"grant_type": ["client_credentials"],
                                   "client_id": ["sandbox-client"],
                                   "client_secret": ["sandbox-secret"]})[1]["access_token"]
        urns: list[str] = []
        for start in range(0, count, 100):
            elements = [{
                "externalJobPostingId": f"bench-{start + i}", "title": "Engineer",
                "description": DESCRIPTION, "companyApplyUrl": "https://example.com/apply",
                "location": "Dublin, Ireland", "listedAt": 0,
                "jobPostingOperationType": "CREATE",
            } for i in range(min(100, count - start))]
            status, body, _ = state.post_jobs({"elements": elements}, f"Bearer {token}",
                                              "batch_create")
            assert status == 200, body
            urns.extend(e["id"] for e in body["elements"])
        return urns

    @contextmanager
    def workers(self, implementation: Implementation, processes: int, label: str
                ) -> Iterator[tuple[int, int]]:
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        started = []
        profiler = None
        try:
            for app, queue, concurrency, env in (
                    ("bench.pipeline", CALLBACK_QUEUE, 2, {}),
                    (implementation.app, QUEUE, processes, implementation.env)):
                log_path = logs / f"{label}-{app}.log"
                process = start_worker(app, queue, {**self.env, **env}, log_path,
                                       concurrency=concurrency)
                started.append(process)
                wait_ready(process, log_path)
            profiler = self.start_profiler(started[1].pid, label) if self.profile else None
            yield started[1].pid, started[0].pid
        finally:
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                profiler.wait(60)
            for process in started:
                stop(process, timeout_seconds=30)

    @staticmethod
    def start_profiler(pid: int, label: str) -> subprocess.Popen[bytes]:
        """py-spy sampling the worker and its pool processes, as collapsed stacks."""
        output = RESULTS / f"profile-{label}.txt"
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
             "--subprocesses", "--format", "raw", "--rate", "200", "--output", str(output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def send(self, implementation: Implementation, workload: Workload,
             operations: list[dict[str, list[str]]], rate: float, label: str
             ) -> subprocess.Popen[bytes]:
        plan = self.workdir / f"{label}-plan.json"
        plan.write_text(json.dumps({
            "implementation": implementation.sends_as, "rate": rate,
            "countdown_seconds": workload.countdown_seconds,
            "in_progress_seconds": workload.in_progress_seconds,
            "operations": operations}))
        return subprocess.Popen(
            [sys.executable, "-m", "bench.sender", str(plan),
             str(self.workdir / f"{label}-sent.json")],
            env={**os.environ, **self.env},
            stdout=(self.workdir / "logs" / f"{label}-sender.log").open("wb"),
            stderr=subprocess.STDOUT)

    def run(self, implementation: Implementation, workload: Workload, processes: int,
            operation_count: int, rate: float) -> Run:
        self.store.flushdb()
        state = self.fresh_sandbox(workload)
        sizes = workload.sizes(operation_count)
        urns = self.post(state, sum(sizes))
        tasks = state.tasks_snapshot()
        slow = {urn for urn in urns if tasks[urn].wait_seconds > 0}
        operations, start = [], 0
        for size in sizes:
            chunk = urns[start:start + size]
            operations.append({"urns": chunk, "slow": [u for u in chunk if u in slow]})
            start += size
        result = Run(implementation.name, workload.name, workload.phase, processes,
                     len(urns), len(operations))
        label = f"{implementation.name}-{workload.name}-{processes}"
        tokens_before = state.token_requests
        with self.workers(implementation, processes, label) as (worker_pid, pipeline_pid):
            result.worker_pss_idle_mb = memory_mb(worker_pid)["pss_mb"]
            idle_before = sum(cpu_split(worker_pid))
            time.sleep(IDLE_SECONDS)
            result.worker_idle_cpu_share = round(
                (sum(cpu_split(worker_pid)) - idle_before) / IDLE_SECONDS, 3)
            sampler = Sampler(self.store, worker_pid,
                              int(self.store.info("memory")["used_memory"]))
            split_before = cpu_split(worker_pid)
            pipe_before = sum(cpu_split(pipeline_pid))
            commands_before = self.commands()
            sampler.start()
            sender = self.send(implementation, workload, operations, rate, label)
            expected = len(operations) / rate if rate else 0.0
            done, copies = self.wait_done(len(urns),
                                          timeout_seconds=expected + max(300, len(urns) / 10))
            sampler.halt.set()
            sampler.join()
            split_after = cpu_split(worker_pid)
            result.worker_cpu_seconds = sum(split_after) - sum(split_before)
            result.worker_main_cpu_seconds = split_after[0] - split_before[0]
            result.pipeline_cpu_seconds = sum(cpu_split(pipeline_pid)) - pipe_before
            self.command_figures(result, commands_before, self.commands(), len(urns))
            if sender.wait(60) != 0:
                raise RuntimeError(f"the sender failed: see {self.workdir}/logs")
        sent = json.loads((self.workdir / f"{label}-sent.json").read_text())
        result.callbacks_received = copies
        result.duplicates = copies - len(done)
        result.missing = len(urns) - len(done)
        flipped = {urn.decode(): float(at)
                   for urn, at in self.store.hgetall("bench:flipped").items()}
        self.account(result, state, urns, slow, operations, sent, done, flipped, workload)
        result.token_requests = state.token_requests - tokens_before
        self.memory_figures(result, sampler.samples, sent)
        return result

    def commands(self) -> dict[str, int]:
        return {name.removeprefix("cmdstat_"): int(stats["calls"])
                for name, stats in self.store.info("commandstats").items()}

    @staticmethod
    def command_figures(result: Run, before: dict[str, int], after: dict[str, int],
                        urns: int) -> None:
        spent = {name: calls - before.get(name, 0) for name, calls in after.items()}
        spent.pop("info", None)  # the sampler's own
        spent.pop("memory|usage", None)
        result.redis_commands_per_urn = round(sum(spent.values()) / urns, 2)
        top = sorted(spent.items(), key=lambda item: -item[1])[:8]
        result.redis_commands_top = {name: round(calls / urns, 2) for name, calls in top}

    @staticmethod
    def account(result: Run, state: SandboxState, urns: list[str], slow: set[str],
                operations: list[dict[str, list[str]]], sent: dict[str, Any],
                done: dict[str, float], flipped: dict[str, float], workload: Workload
                ) -> None:
        calls = state.status_calls()
        result.status_calls = len(calls)
        result.calls_per_urn = len(calls) / len(urns)
        result.urns_per_call = sum(c.ids for c in calls) / max(1, len(calls))
        extra_rounds = math.ceil(workload.in_progress_seconds / POLL_SECONDS)
        result.urn_rounds = len(urns) + extra_rounds * len(slow)
        result.calls_per_40_urn_rounds = 40 * len(calls) / result.urn_rounds
        result.worker_cpu_per_1000_urns = result.worker_cpu_seconds * 1000 / len(urns)
        result.sending_seconds = sent["finished"] - sent["started"]
        finished = max(done.values()) if done else time.time()
        result.seconds = finished - sent["started"]
        result.urns_per_second = len(done) / result.seconds
        # A URN's clock starts once LinkedIn has decided it and its first check is due
        # (the pipeline's countdown is its own choice); a callback before that is early.
        due = {urn: at + workload.countdown_seconds
               for operation, at in zip(operations, sent["sent_at"], strict=True)
               for urn in operation["urns"]}
        tasks = state.tasks_snapshot()

        def flip(urn: str) -> float:
            return max(flipped.get(urn, tasks[urn].ready_at), due[urn])

        latency = {urn: (at - flip(urn)) * 1000 for urn, at in done.items()}
        after_due = [(at - due[urn]) * 1000 for urn, at in done.items()]
        result.callback_after_due_ms = (percentile(after_due, 0.5),
                                        percentile(after_due, 0.99))
        asked = [(tasks[u].first_checked_at - due[u]) * 1000 for u in urns
                 if tasks[u].first_checked_at is not None]
        if asked:
            result.asked_after_due_ms = (percentile(asked, 0.5), percentile(asked, 0.99))
        result.p50_flip_to_callback_ms = percentile(list(latency.values()), 0.5)
        result.p99_flip_to_callback_ms = percentile(list(latency.values()), 0.99)
        if slow:
            held = [latency[u] for u in slow if u in latency]
            result.in_progress_p50_ms = percentile(held, 0.5)
            result.in_progress_p99_ms = percentile(held, 0.99)

    @staticmethod
    def memory_figures(result: Run, samples: list[dict[str, float]], sent: dict[str, Any]
                       ) -> None:
        if not samples:
            return
        result.worker_pss_peak_mb = max(s["pss_mb"] for s in samples)
        steady = [s for s in samples if s["at"] <= sent["finished"] and s["pending"] >= 100]
        if steady:
            result.pending_urns_median = statistics.median(s["pending"] for s in steady)
        fitted = per_pending_and_done(samples)
        if fitted is not None:
            result.redis_bytes_per_pending_urn, result.redis_bytes_per_done_urn = fitted

    def wait_done(self, count: int, timeout_seconds: float) -> tuple[dict[str, float], int]:
        """Each URN's first callback time, and how many callbacks ran (copies included)."""
        deadline = time.monotonic() + timeout_seconds
        while self.store.hlen("bench:done") < count and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # a late duplicate would show now
        raw = self.store.hgetall("bench:done")
        return ({urn.decode(): float(at) for urn, at in raw.items()},
                int(self.store.get("bench:copies") or 0))

    # ----- 100,000 pending -----------------------------------------------------------

    def pending_memory(self, implementation: str, pending: int, urns_per_op: int
                       ) -> dict[str, Any]:
        """Memory of a 2-process worker and of Redis with ``pending`` URNs an hour away."""
        self.store.flushdb()
        baseline = int(self.store.info("memory")["used_memory"])
        urns = [f"urn:li:simpleJobPostingTask:{i:08d}-0000-4000-8000-000000000000"
                for i in range(pending)]
        label = f"pending-{implementation}-{urns_per_op}"
        with self.workers(IMPLEMENTATIONS[implementation], 2, label) as (worker_pid, _):
            idle = memory_mb(worker_pid)
            started = time.time()
            self.schedule_later(implementation, urns, urns_per_op)
            scheduling_seconds = time.time() - started
            worker = self.settled_memory(worker_pid)
            used = int(self.store.info("memory")["used_memory"])
        return {
            "implementation": implementation, "pending_urns": pending,
            "urns_per_operation": urns_per_op,
            "scheduling_seconds": round(scheduling_seconds, 1),
            "worker_idle": idle, "worker": worker,
            "redis_used_bytes": used - baseline,
            "redis_bytes_per_urn": round((used - baseline) / pending, 1),
        }

    @staticmethod
    def schedule_later(implementation: str, urns: list[str], urns_per_op: int) -> None:
        later = 3600
        context = {"partner": "bench"}
        if implementation == "naive":
            from bench.naive import app as naive_app

            with naive_app.producer_or_acquire() as producer:
                for urn in urns:
                    naive_app.send_task("naive.verify", args=(urn, "CREATE", "bench.record",
                                                              context),
                                        queue=QUEUE, countdown=later, producer=producer)
            return
        from workers.scheduling import verify_urns

        for start in range(0, len(urns), urns_per_op):
            verify_urns(urns[start:start + urns_per_op], "CREATE", {"DEFAULT": "bench.record"},
                        context, countdown_seconds=later)

    @staticmethod
    def settled_memory(pid: int) -> dict[str, float]:
        """The worker's memory once it has stopped growing (it prefetches countdowns)."""
        last = memory_mb(pid)
        for _ in range(60):
            time.sleep(2)
            now = memory_mb(pid)
            if abs(now["rss_mb"] - last["rss_mb"]) < 1:
                return now
            last = now
        return last


# ----- targets and report ---------------------------------------------------------------

@dataclass
class Target:
    target: str
    where: str
    figure: float
    limit: float
    met: bool


def targets(runs: list[Run]) -> list[Target]:
    """Each of issue 14's targets against its figure, for every run it applies to."""
    by = {(r.implementation, r.workload, r.processes): r for r in runs}
    found: list[Target] = []

    def add(name: str, where: str, figure: float, limit: float, at_most: bool) -> None:
        figure = round(figure, 3)
        found.append(Target(name, where, figure, limit,
                            figure <= limit if at_most else figure >= limit))

    for (impl, workload, procs), run in sorted(by.items()):
        if impl not in JOBOPS:
            continue
        where = f"{impl} {workload} {procs} proc"
        add("LinkedIn calls per 40 URN-rounds", where, run.calls_per_40_urn_rounds, 1.0,
            True)
        if impl == "jobops_x10":
            continue
        for baseline, limit in (("card", 1.0), ("floor", 1.2)):
            other = by.get((baseline, workload, procs))
            if other and other.worker_cpu_seconds:
                add(f"worker CPU per URN, x {baseline}", where,
                    run.worker_cpu_seconds / other.worker_cpu_seconds, limit, True)
        floor = by.get(("floor", workload, procs))
        if run.phase == "capacity" and floor:
            add("throughput, x floor", where, run.urns_per_second / floor.urns_per_second,
                1.0, False)
        if run.phase == "steady":
            add("p99 flip to callback, s", where, run.p99_flip_to_callback_ms / 1000,
                POLL_SECONDS + 2, True)
        tenfold = by.get(("jobops_x10", workload, procs))
        if impl == "jobops" and tenfold:
            add("throughput at 10 calls/s, x at 100", where,
                run.urns_per_second / tenfold.urns_per_second, 0.9, False)
    return found


def chart(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = [w for w in WORKLOADS if any(r.workload == w for r in runs)]
    impls = [i for i in IMPLEMENTATIONS if any(r.implementation == i for r in runs)]
    by = {(r.implementation, r.workload, r.processes): r for r in runs}
    rows = (("urns_per_second", "URNs/s, first send to last callback", False),
            ("worker_cpu_per_1000_urns", "worker CPU s per 1,000 URNs", False),
            ("p99_flip_to_callback_ms", "p99 flip to callback, ms", False),
            ("calls_per_urn", "LinkedIn calls per URN", True))
    figure, axes = plt.subplots(len(rows), len(workloads),
                                figsize=(5 * len(workloads), 3.2 * len(rows)), squeeze=False)
    width = 0.8 / max(1, len(impls))
    for column, workload in enumerate(workloads):
        procs = sorted({r.processes for r in runs if r.workload == workload})
        for row, (metric, title, log) in enumerate(rows):
            axis = axes[row][column]
            for index, impl in enumerate(impls):
                values = [getattr(by[(impl, workload, p)], metric)
                          if (impl, workload, p) in by else 0 for p in procs]
                axis.bar([p + (index - len(impls) / 2 + 0.5) * width for p in range(len(procs))],
                         values, width, label=impl)
            axis.set_xticks(range(len(procs)), [f"{p} proc" for p in procs])
            axis.set_title(f"{workload}: {title}", fontsize=9)
            if log:
                axis.set_yscale("symlog", linthresh=0.01)
        axes[0][column].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def print_run(run: Run) -> None:
    print(f"{run.implementation:15} {run.workload:13} {run.processes} proc: "
          f"{run.urns_per_second:6.0f} URNs/s  {run.status_calls:6} calls "
          f"({run.calls_per_40_urn_rounds:5.2f}/40 URN-rounds)  "
          f"{run.worker_cpu_per_1000_urns:5.2f} CPU s/1k  "
          f"p50 {run.p50_flip_to_callback_ms:6.0f} p99 {run.p99_flip_to_callback_ms:6.0f} ms  "
          f"PSS {run.worker_pss_peak_mb:5.0f} MB  Redis B/pending "
          f"{run.redis_bytes_per_pending_urn}  Redis cmd/URN {run.redis_commands_per_urn}  "
          f"missing {run.missing} dup {run.duplicates}",
          flush=True)


def measure(args: argparse.Namespace) -> tuple[list[Run], list[dict[str, Any]]]:
    """Every run the arguments ask for, printed as it ends, then the memory figures."""
    runs: list[Run] = []
    memory: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="jobops-bench-") as workdir:
        bench = Bench(Path(workdir), args.profile)
        try:
            for workload in (WORKLOADS[name] for name in args.workloads):
                if workload.phase not in args.phases:
                    continue
                steady = workload.phase == "steady"
                procs = args.steady_procs if steady else args.procs
                operations = (int(args.rate * args.seconds) if steady
                              else args.urns // (100 if workload.big_every == 1 else 1))
                for processes in procs:
                    for name in args.implementations:
                        if name == "jobops_x10" and workload.phase != "capacity":
                            continue
                        run = bench.run(IMPLEMENTATIONS[name], workload, processes,
                                        operations, args.rate if steady else 0.0)
                        runs.append(run)
                        print_run(run)
            if "pending" in args.phases and args.pending:
                for implementation, per_op in (("jobops", 1), ("jobops", 100), ("naive", 1)):
                    if implementation in args.implementations:
                        memory.append(bench.pending_memory(implementation, args.pending,
                                                           per_op))
                        print(json.dumps(memory[-1]), flush=True)
        finally:
            bench.close()
    return runs, memory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", nargs="+", default=["capacity", "steady", "pending"],
                        choices=["capacity", "steady", "pending"])
    parser.add_argument("--urns", type=int, default=5_000, help="URNs per capacity run")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4],
                        help="worker processes for the capacity runs")
    parser.add_argument("--steady-procs", type=int, nargs="+", default=[2])
    parser.add_argument("--rate", type=float, default=50.0,
                        help="operations per second in the steady runs")
    parser.add_argument("--seconds", type=float, default=180.0,
                        help="how long the steady runs send")
    parser.add_argument("--implementations", nargs="+", default=list(DEFAULT_IMPLEMENTATIONS),
                        choices=list(IMPLEMENTATIONS))
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS),
                        choices=list(WORKLOADS))
    parser.add_argument("--pending", type=int, default=100_000,
                        help="URNs pending for the memory figures")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1,000 URNs, 2 processes, 20 s steady, "
                             "10,000 pending")
    parser.add_argument("--out", default="compare")
    parser.add_argument("--redraw", action="store_true",
                        help="only draw the chart again from bench/results/<out>.json")
    parser.add_argument("--profile", action="store_true",
                        help="sample the verification worker with py-spy into "
                             "bench/results/profile-*.txt (collapsed stacks)")
    args = parser.parse_args(argv)
    if args.redraw:
        saved = json.loads((RESULTS / f"{args.out}.json").read_text())
        chart([Run(**run) for run in saved["runs"]], RESULTS / f"{args.out}.png")
        return 0
    if args.quick:
        args.urns, args.procs, args.seconds, args.pending = 1_000, [2], 20.0, 10_000
    RESULTS.mkdir(exist_ok=True)
    started = time.time()
    runs, memory = measure(args)
    found = targets(runs)
    report = {
        "command": "python -m bench.compare " + " ".join(sys.argv[1:] if argv is None
                                                         else argv),
        "minutes": round((time.time() - started) / 60, 1),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "settings": {"poll_interval_seconds": POLL_SECONDS,
                     "steady_countdown_seconds": STEADY_COUNTDOWN_SECONDS,
                     "in_progress_seconds": IN_PROGRESS_SECONDS,
                     "steady_operations_per_second": args.rate,
                     "steady_seconds": args.seconds,
                     "pipeline_worker_processes": 2},
        "targets": [asdict(t) for t in found],
        "runs": [asdict(r) for r in runs],
        "pending_memory": memory,
    }
    (RESULTS / f"{args.out}.json").write_text(json.dumps(report, indent=2) + "\n")
    if runs:
        chart(runs, RESULTS / f"{args.out}.png")
    print()
    for t in found:
        print(f"{'met   ' if t.met else 'MISSED'} {t.target:38} {t.where:32} "
              f"{t.figure:8.3f} (limit {t.limit})")
    print(f"\nwritten: {RESULTS / (args.out + '.json')}, {RESULTS / (args.out + '.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
