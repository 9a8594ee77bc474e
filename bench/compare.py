"""jobops against the naive baseline and Celery's floor, side by side in one run.

Every run is real: a Redis server of the benchmark's own, the sandbox over HTTP (in this
process), a verification worker with 1, 2 or 4 processes and a separate pipeline worker
whose callback records when each outcome arrived. Implementations:

    jobops        verify_job_operation, one callback task per outcome
    jobops_batch  verify_job_operation, BATCH callbacks (lists of outcomes)
    naive         bench.naive: a task and a GET per URN, a token per process
    floor         bench.floor: the same tasks and callbacks, no LinkedIn call at all

Workloads: 10,000 URNs as 10,000 single-job operations (single); as 100 operations of 100
(hundreds); single-job, with 30% IN_PROGRESS at their first check (in_progress). Then
100,000 URNs pending (scheduled an hour ahead) to read worker and Redis memory.

    .venv/bin/python -m bench.compare [--urns 10000] [--procs 1 2 4] [--quick]

Writes bench/results/compare.json and bench/results/compare.png; prints the ratios last.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis

from jobops.processes import free_port, start_redis, start_worker, stop, wait_ready
from sandbox import SandboxConfig, SandboxServer, SandboxState

RESULTS = Path(__file__).parent / "results"
QUEUE = "bench-verify"
CALLBACK_QUEUE = "bench-pipeline"
POLL_SECONDS = 1.0
# Shorter than a poll interval: a task IN_PROGRESS at its first check is decided by the
# second, in every implementation.
IN_PROGRESS_SECONDS = 0.5
IMPLEMENTATIONS = ("jobops", "jobops_batch", "naive", "floor")
APPS = {"jobops": "workers", "jobops_batch": "workers", "naive": "bench.naive",
        "floor": "bench.floor"}
DESCRIPTION = "A role for people who like building reliable systems. " * 3


@dataclass(frozen=True)
class Workload:
    name: str
    urns_per_op: int
    in_progress_share: float


WORKLOADS = (Workload("single", 1, 0.0), Workload("hundreds", 100, 0.0),
             Workload("in_progress", 1, 0.3))


@dataclass
class Run:
    implementation: str
    workload: str
    processes: int
    urns: int
    operations: int
    # Scheduling every operation (before the workers start), then from the verification
    # worker being ready to the last callback; urns_per_second is over the latter.
    scheduling_seconds: float = 0.0
    seconds: float = 0.0
    urns_per_second: float = 0.0
    end_to_end_urns_per_second: float = 0.0
    status_calls: int = 0
    calls_per_urn: float = 0.0
    urns_per_call: float = 0.0
    token_requests: int = 0
    worker_cpu_seconds: float = 0.0
    worker_cpu_per_1000_urns: float = 0.0
    # Of worker_cpu_seconds: the worker's main process (consuming, dispatching, timers).
    worker_main_cpu_seconds: float = 0.0
    pipeline_cpu_seconds: float = 0.0
    callback_tasks: int = 0
    callbacks_received: int = 0
    duplicates: int = 0
    missing: int = 0
    p50_flip_to_callback_ms: float = 0.0
    p99_flip_to_callback_ms: float = 0.0
    in_progress_p50_ms: float | None = None
    in_progress_p99_ms: float | None = None
    notes: list[str] = field(default_factory=list)


def bench_env(redis_url: str, sandbox_url: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "LINKEDIN_API_URL": sandbox_url,
        "LINKEDIN_TOKEN_URL": sandbox_url + "/oauth/v2/accessToken",
        "LINKEDIN_CLIENT_ID": "sandbox-client",
        "LINKEDIN_CLIENT_SECRET": "sandbox-secret",
        "JOBOPS_QUEUE": QUEUE,
        "JOBOPS_CALLBACK_QUEUE": CALLBACK_QUEUE,
        "JOBOPS_FIRST_CHECK_SECONDS": "0",
        "JOBOPS_POLL_INTERVAL_SECONDS": str(POLL_SECONDS),
        "JOBOPS_MAX_POLL_INTERVAL_SECONDS": str(POLL_SECONDS),
        # LinkedIn's limit is daily; the per-second pace is left to the sandbox.
        "JOBOPS_CALLS_PER_SECOND": "10000",
        "JOBOPS_DAILY_CALL_LIMIT": "100000000",
        "JOBOPS_QUOTA_RESERVE": "0",
        "JOBOPS_BATCH_SIZE": "100",
        "JOBOPS_BATCH_SECONDS": "0.5",
    }


def tree(pid: int) -> list[psutil.Process]:
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    return sum(cpu_split(pid))


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


class Bench:
    def __init__(self, workdir: Path, urns: int, profile: bool = False) -> None:
        self.workdir = workdir
        self.urns = urns
        self.profile = profile
        self.redis_process, self.redis_url = start_redis(workdir)
        self.store = redis.Redis.from_url(self.redis_url)
        self.server = SandboxServer(SandboxState(SandboxConfig()), port=free_port())
        self.server.start_in_thread()
        self.env = bench_env(self.redis_url, self.server.url)
        # The scheduling side (this process) reads the same settings as the workers.
        os.environ.update(self.env)

    def close(self) -> None:
        self.server.shutdown()
        stop(self.redis_process)

    # ----- one run -------------------------------------------------------------------

    def fresh_sandbox(self, workload: Workload) -> SandboxState:
        state = SandboxState(SandboxConfig(
            in_progress_seconds=IN_PROGRESS_SECONDS,
            in_progress_share=workload.in_progress_share,
            in_progress_from_first_check=True,
            token_lifetime_seconds=86_400,
        ))
        self.server.state = state
        return state

    def post(self, state: SandboxState, count: int) -> list[str]:
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
    def workers(self, implementation: str, processes: int, label: str
                ) -> Iterator[tuple[int, int]]:
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        started = []
        profiler = None
        try:
            # The pipeline worker first: the verification worker starts work when ready.
            for app, queue, concurrency in (("bench.pipeline", CALLBACK_QUEUE, 2),
                                            (APPS[implementation], QUEUE, processes)):
                log_path = logs / f"{label}-{app}.log"
                process = start_worker(app, queue, {**self.env},
                                       log_path, concurrency=concurrency)
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

    def scheduler(self, implementation: str) -> Callable[[list[str], list[str]], None]:
        """A function sending one operation's verification, as a pipeline would."""
        context = {"partner": "bench"}
        if implementation in ("jobops", "jobops_batch"):
            from tasks.scheduling import verify_urns

            callbacks = ({"BATCH": "bench.record_batch"} if implementation == "jobops_batch"
                         else {"DEFAULT": "bench.record"})
            return lambda urns, _: verify_urns(urns, "CREATE", callbacks, context,
                                               countdown_seconds=0) and None
        if implementation == "naive":
            from bench.naive import app as naive_app

            def naive(urns: list[str], _: list[str]) -> None:
                for urn in urns:
                    naive_app.send_task("naive.verify", args=(urn, "CREATE", "bench.record",
                                                              context), queue=QUEUE)
            return naive
        from bench.floor import app as floor_app

        def floor(urns: list[str], in_progress: list[str]) -> None:
            floor_app.send_task("floor.verify", kwargs={
                "task_urns": urns, "operation": "CREATE",
                "callbacks": {"DEFAULT": "bench.record"}, "context": context,
                "in_progress": in_progress}, queue=QUEUE)
        return floor

    def run(self, implementation: str, workload: Workload, processes: int) -> Run:
        self.store.flushdb()
        state = self.fresh_sandbox(workload)
        urns = self.post(state, self.urns)
        tokens_before = state.token_requests
        tasks = state.tasks_snapshot()
        slow = {urn for urn in urns if tasks[urn].wait_seconds > 0}
        operations = [urns[i:i + workload.urns_per_op]
                      for i in range(0, len(urns), workload.urns_per_op)]
        result = Run(implementation, workload.name, processes, len(urns), len(operations))
        send = self.scheduler(implementation)
        label = f"{implementation}-{workload.name}-{processes}"
        # Everything is scheduled before the workers start, so that the scheduling process
        # (a pipeline's, here this one) does not compete with them for the 2 cores.
        started = time.time()
        for operation in operations:
            send(operation, [u for u in operation if u in slow])
        result.scheduling_seconds = time.time() - started
        with self.workers(implementation, processes, label) as (worker_pid, pipeline_pid):
            split_before = cpu_split(worker_pid)
            cpu_before, pipe_before = sum(split_before), cpu_seconds(pipeline_pid)
            processing_started = time.time()
            done = self.wait_done(len(urns), timeout_seconds=max(300, len(urns) / 10))
            split_after = cpu_split(worker_pid)
            result.worker_cpu_seconds = sum(split_after) - cpu_before
            result.worker_main_cpu_seconds = split_after[0] - split_before[0]
            result.pipeline_cpu_seconds = cpu_seconds(pipeline_pid) - pipe_before
        calls = state.status_calls()
        result.status_calls = len(calls)
        result.calls_per_urn = len(calls) / len(urns)
        result.urns_per_call = sum(c.ids for c in calls) / max(1, len(calls))
        result.token_requests = state.token_requests - tokens_before
        result.worker_cpu_per_1000_urns = result.worker_cpu_seconds * 1000 / len(urns)
        result.callbacks_received = int(self.store.get("bench:copies") or 0)
        result.duplicates = result.callbacks_received - len(done)
        result.missing = len(urns) - len(done)
        finished = max(done.values()) if done else time.time()
        result.seconds = finished - processing_started
        result.urns_per_second = len(done) / result.seconds
        result.end_to_end_urns_per_second = len(done) / (result.seconds
                                                          + result.scheduling_seconds)
        tasks = state.tasks_snapshot()
        latency = {urn: (at - max(tasks[urn].ready_at, processing_started)) * 1000
                   for urn, at in done.items()}
        result.p50_flip_to_callback_ms = percentile(list(latency.values()), 0.5)
        result.p99_flip_to_callback_ms = percentile(list(latency.values()), 0.99)
        if slow:
            flipped = [latency[u] for u in slow if u in latency]
            result.in_progress_p50_ms = percentile(flipped, 0.5)
            result.in_progress_p99_ms = percentile(flipped, 0.99)
        return result

    def wait_done(self, count: int, timeout_seconds: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout_seconds
        while self.store.hlen("bench:done") < count and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # a late duplicate would show now
        raw = self.store.hgetall("bench:done")
        return {urn.decode(): float(at) for urn, at in raw.items()}

    # ----- 100,000 pending -----------------------------------------------------------

    def pending_memory(self, implementation: str, pending: int, urns_per_op: int
                       ) -> dict[str, Any]:
        """Memory of a 2-process worker and of Redis with ``pending`` URNs an hour away."""
        self.store.flushdb()
        baseline = int(self.store.info("memory")["used_memory"])
        urns = [f"urn:li:simpleJobPostingTask:{i:08d}-0000-4000-8000-000000000000"
                for i in range(pending)]
        label = f"pending-{implementation}-{urns_per_op}"
        with self.workers(implementation, 2, label) as (worker_pid, _):
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

    def schedule_later(self, implementation: str, urns: list[str], urns_per_op: int) -> None:
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
        from tasks.scheduling import verify_urns

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


# ----- report -------------------------------------------------------------------------

def ratios(runs: list[Run]) -> list[str]:
    by = {(r.implementation, r.workload, r.processes): r for r in runs}
    lines = []
    for (impl, workload, processes), run in sorted(by.items()):
        if impl not in ("jobops", "jobops_batch"):
            continue
        naive = by.get(("naive", workload, processes))
        floor = by.get(("floor", workload, processes))
        parts = [f"{impl:12} {workload:11} {processes} proc:",
                 f"{run.urns_per_call:5.1f} URNs/call"]
        if naive:
            parts.append(f"throughput {run.urns_per_second / naive.urns_per_second:5.2f}x naive")
            parts.append(f"calls {run.status_calls}/{naive.status_calls}")
        if floor:
            parts.append(f"{run.urns_per_second / floor.urns_per_second:5.2f}x floor")
            parts.append(f"CPU/URN {run.worker_cpu_seconds / floor.worker_cpu_seconds:5.2f}x "
                         "floor")
        lines.append("  ".join(parts))
    return lines


def chart(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = sorted({r.workload for r in runs}, key=[w.name for w in WORKLOADS].index)
    procs = sorted({r.processes for r in runs})
    impls = [i for i in IMPLEMENTATIONS if any(r.implementation == i for r in runs)]
    by = {(r.implementation, r.workload, r.processes): r for r in runs}
    figure, axes = plt.subplots(3, len(workloads), figsize=(5 * len(workloads), 11),
                                squeeze=False)
    width = 0.8 / len(impls)
    for column, workload in enumerate(workloads):
        for row, (metric, title, log) in enumerate((
                ("urns_per_second", "URNs/s, workers ready to last callback", False),
                ("worker_cpu_per_1000_urns", "worker CPU s per 1,000 URNs", False),
                ("calls_per_urn", "LinkedIn calls per URN", True))):
            axis = axes[row][column]
            for index, impl in enumerate(impls):
                values = [getattr(by[(impl, workload, p)], metric)
                          if (impl, workload, p) in by else 0 for p in procs]
                axis.bar([p + (index - len(impls) / 2 + 0.5) * width for p in range(len(procs))],
                         values, width, label=impl)
            axis.set_xticks(range(len(procs)), [f"{p} proc" for p in procs])
            axis.set_title(f"{workload}: {title}")
            if log:
                axis.set_yscale("symlog", linthresh=0.01)
        axes[0][0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urns", type=int, default=10_000)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--implementations", nargs="+", default=list(IMPLEMENTATIONS),
                        choices=IMPLEMENTATIONS)
    parser.add_argument("--workloads", nargs="*", default=[w.name for w in WORKLOADS],
                        choices=[w.name for w in WORKLOADS])
    parser.add_argument("--pending", type=int, default=100_000,
                        help="URNs pending for the memory figures; 0 skips them")
    parser.add_argument("--quick", action="store_true",
                        help="1,000 URNs, 2 processes, 10,000 pending: a smoke run")
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
        args.urns, args.procs, args.pending = 1_000, [2], 10_000
    RESULTS.mkdir(exist_ok=True)
    runs, memory = measure(args)
    report = {
        "command": "python -m bench.compare " + " ".join(sys.argv[1:] if argv is None
                                                         else argv),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "settings": {"poll_interval_seconds": POLL_SECONDS,
                     "in_progress_seconds": IN_PROGRESS_SECONDS,
                     "pipeline_worker_processes": 2},
        "runs": [asdict(r) for r in runs],
        "pending_memory": memory,
    }
    (RESULTS / f"{args.out}.json").write_text(json.dumps(report, indent=2) + "\n")
    if runs:
        chart(runs, RESULTS / f"{args.out}.png")
    print()
    for line in ratios(runs):
        print(line)
    print(f"\nwritten: {RESULTS / (args.out + '.json')}, {RESULTS / (args.out + '.png')}")
    return 0


def measure(args: argparse.Namespace) -> tuple[list[Run], list[dict[str, Any]]]:
    """Every run the arguments ask for, printed as it ends, then the memory figures."""
    runs: list[Run] = []
    memory: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="jobops-bench-") as workdir:
        bench = Bench(Path(workdir), args.urns, args.profile)
        try:
            for workload in [w for w in WORKLOADS if w.name in args.workloads]:
                for processes in args.procs:
                    for implementation in args.implementations:
                        run = bench.run(implementation, workload, processes)
                        runs.append(run)
                        print(f"{implementation:12} {workload.name:11} {processes} proc: "
                              f"{run.urns_per_second:7.0f} URNs/s  "
                              f"(end to end {run.end_to_end_urns_per_second:5.0f})  "
                              f"{run.status_calls:6} calls  "
                              f"{run.worker_cpu_per_1000_urns:5.2f} CPU s/1k  "
                              f"p50 {run.p50_flip_to_callback_ms:7.0f} ms  "
                              f"p99 {run.p99_flip_to_callback_ms:7.0f} ms  "
                              f"missing {run.missing} dup {run.duplicates}", flush=True)
            if args.pending:
                for implementation, per_op in (("jobops", 1), ("jobops", 100), ("naive", 1)):
                    if implementation in args.implementations:
                        memory.append(bench.pending_memory(implementation, args.pending,
                                                           per_op))
                        print(json.dumps(memory[-1]), flush=True)
        finally:
            bench.close()
    return runs, memory


if __name__ == "__main__":
    raise SystemExit(main())
