"""The run's worker processes: three jobops workers and the callback consumer, supervised
as compose or systemd would: one that exits by itself is counted and started again."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

from jobops.dev.processes import start_worker, stop, wait_ready

JOBOPS_WORKERS = 3
CONCURRENCY = 2


class Fleet:
    def __init__(self, env: dict[str, str], workdir: Path, rng: random.Random) -> None:
        self.env = env
        self.workdir = workdir
        self.rng = rng
        self.jobops: list[subprocess.Popen[bytes]] = []
        self.consumer: subprocess.Popen[bytes] | None = None
        # Every process ever started, so that all of them are stopped at the end.
        self.started: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}
        self._ready: set[int] = set()
        self.exits = {"jobops": 0, "consumer": 0}

    def start(self) -> None:
        """Start every worker at once (they load in parallel), then wait for each."""
        logs = [self._start_jobops(index) for index in range(JOBOPS_WORKERS)]
        logs.append(self._start_consumer())
        for process, log in zip(self.jobops + [self.consumer], logs, strict=True):
            assert process is not None
            wait_ready(process, log)

    def _start(self, app: str, queue: str, label: str) -> tuple[subprocess.Popen[bytes], Path]:
        stamp = time.monotonic_ns()
        log = self.workdir / f"{label}-{stamp}.log"
        process = start_worker(app, queue, self.env, log, concurrency=CONCURRENCY,
                               name=f"chaos-{label}-{stamp}@%h")
        self.started.append(process)
        self.logs[process.pid] = log
        return process, log

    def _start_jobops(self, index: int) -> Path:
        process, log = self._start("workers", self.env["JOBOPS_QUEUE"], f"worker-{index}")
        if index < len(self.jobops):
            self.jobops[index] = process
        else:
            self.jobops.append(process)
        return log

    def _start_consumer(self) -> Path:
        self.consumer, log = self._start("tests.chaos_pipeline",
                                         self.env["JOBOPS_CALLBACK_QUEUE"], "consumer")
        return log

    def supervise(self) -> None:
        """Restart whatever exited, without waiting for it to be ready: the run's clock
        (kills 2 s apart) must not stall on a worker's start-up."""
        for index, process in enumerate(self.jobops):
            if process.poll() is not None:
                self.exits["jobops"] += 1
                print(f"jobops worker {index} exited by itself; restarting it", flush=True)
                self._start_jobops(index)
        if self.consumer is not None and self.consumer.poll() is not None:
            self.exits["consumer"] += 1
            print("the consumer exited by itself; restarting it", flush=True)
            self._start_consumer()

    def kill_pool_process(self) -> str | None:
        """SIGKILL one pool process of a random ready jobops worker; None if none is ready.
        A worker still starting gives up when a pool process dies ("Could not start worker
        processes"): that is not the crash the run is about."""
        candidates = [(index, pool) for index, process in enumerate(self.jobops)
                      if self._is_ready(process) and (pool := _children(process.pid))]
        if not candidates:
            return None
        index, pool = self.rng.choice(candidates)
        pid = self.rng.choice(pool)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None  # it was being replaced anyway
        return f"pool process {pid} of jobops worker {index}"

    def _is_ready(self, process: subprocess.Popen[bytes]) -> bool:
        if process.poll() is not None:
            return False
        if process.pid not in self._ready:
            log = self.logs[process.pid].read_text(errors="replace")
            if " ready." in log:
                self._ready.add(process.pid)
        return process.pid in self._ready

    def unrecoverable_errors(self) -> int:
        """Celery's "Unrecoverable error" lines in jobops workers' logs: a worker can log one
        and then hang in its warm shutdown, alive but consuming nothing, which no count of
        exits shows."""
        jobops_logs = [log for log in self.logs.values() if log.name.startswith("worker-")]
        return sum(log.read_text(errors="replace").count("Unrecoverable error")
                   for log in jobops_logs)

    def stop(self) -> None:
        for process in self.started:
            stop(process, timeout_seconds=5)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]
