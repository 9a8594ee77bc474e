"""What Celery's task events cost: Celery's floor (bench.floor) with them off and on.

One worker process, a Redis server of its own, the same tasks twice in one run: worker
CPU per task (main process and pool process) and tasks per second to the last callback
published. Writes bench/results/events_cost.json.

    .venv/bin/python -m bench.events_cost [--tasks 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench.compare import RESULTS, cpu_split
from jobops.dev.processes import start_redis, start_worker, stop, wait_ready

QUEUE, CALLBACKS = "events-cost", "events-cost-callbacks"


def measure(workdir: Path, redis_url: str, tasks: int, events: bool) -> dict[str, Any]:
    env = {"REDIS_URL": redis_url, "JOBOPS_QUEUE": QUEUE, "JOBOPS_CALLBACK_QUEUE": CALLBACKS,
           "LINKEDIN_CLIENT_ID": "unused", "LINKEDIN_CLIENT_SECRET": "unused",
           "JOBOPS_TASK_EVENTS": "1" if events else "0"}
    os.environ.update(env)
    from bench.floor import app

    store = redis.Redis.from_url(redis_url)
    store.flushdb()
    log_path = workdir / f"floor-events-{events}.log"
    worker = start_worker("bench.floor", QUEUE, env, log_path, concurrency=1)
    try:
        wait_ready(worker, log_path)
        before = cpu_split(worker.pid)
        started = time.monotonic()
        with app.producer_or_acquire() as producer:
            for index in range(tasks):
                app.send_task("floor.verify", kwargs={
                    "task_urns": [f"urn:li:simpleJobPostingTask:{index}"],
                    "operation": "CREATE", "callbacks": {"DEFAULT": "bench.record"},
                    "context": {}}, queue=QUEUE, producer=producer)
        while store.llen(CALLBACKS) < tasks:
            time.sleep(0.05)
        seconds = time.monotonic() - started
        after = cpu_split(worker.pid)
    finally:
        stop(worker)
    return {
        "task_events": events,
        "tasks": tasks,
        "tasks_per_second": round(tasks / seconds, 1),
        "main_cpu_ms_per_task": round((after[0] - before[0]) * 1000 / tasks, 2),
        "pool_cpu_ms_per_task": round((after[1] - before[1]) * 1000 / tasks, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jobops-events-") as workdir:
        redis_process, redis_url = start_redis(Path(workdir))
        try:
            runs = [measure(Path(workdir), redis_url, args.tasks, events)
                    for events in (False, True)]
        finally:
            stop(redis_process)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "events_cost.json").write_text(json.dumps(
        {"command": "python -m bench.events_cost", "runs": runs}, indent=2) + "\n")
    for run in runs:
        print(json.dumps(run))
    off, on = runs

    def cpu(run: dict[str, Any]) -> float:
        return float(run["main_cpu_ms_per_task"] + run["pool_cpu_ms_per_task"])

    print(f"events on: {on['tasks_per_second'] / off['tasks_per_second']:.2f}x the "
          f"throughput, {cpu(on) - cpu(off):+.2f} ms worker CPU per task")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
