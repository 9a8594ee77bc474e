"""A fleet of the test's own: a Redis it may kill (append-only file, password), real jobops
workers and a callback consumer against it, and verifications sent by name."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from jobops.dev.processes import free_port, redis_answers, start_worker, stop, wait_ready
from tests.env import REDIS_URL, TEST_ENV
from tests.outage_pipeline import record_key

#: Short, so what a stopped worker held comes back within a test.
VISIBILITY_TIMEOUT_SECONDS = 20
#: The fleet's Redis has a password, as production's would; it must never show.
PASSWORD = "fleet-redis-hunter2"


class RedisServer:
    """A Redis on a free loopback port with an append-only file, killed and started again
    on the same port and files."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--requirepass", PASSWORD, "--appendonly", "yes", "--appendfsync", "everysec",
             "--save", "", "--dir", str(self.workdir)],
            stdout=(self.workdir / "redis.log").open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 10
        while not redis_answers(self.url):
            assert self.process.poll() is None and time.monotonic() < deadline, \
                (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


class Fleet:
    """A Redis of the test's own, jobops workers and a callback consumer against it."""

    def __init__(self, workdir: Path, store: redis.Redis) -> None:
        self.workdir, self.store = workdir, store
        self.redis = RedisServer(workdir)
        self.redis.start()
        self.tag = uuid.uuid4().hex[:8]
        self.env = {**TEST_ENV, "REDIS_URL": self.redis.url,
                    "JOBOPS_QUEUE": f"jobops-outage-{self.tag}",
                    "JOBOPS_CALLBACK_QUEUE": f"pipeline-outage-{self.tag}",
                    "JOBOPS_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_TIMEOUT_SECONDS),
                    "OUTAGE_RECORD_URL": REDIS_URL}
        self.processes: list[subprocess.Popen[bytes]] = []
        self.sender = Celery("outage-sender", broker=self.redis.url)

    def worker(self, name: str, concurrency: int = 2) -> tuple[subprocess.Popen[bytes], Path]:
        log_path = self.workdir / f"{name}.log"
        process = start_worker("workers", self.env["JOBOPS_QUEUE"], self.env, log_path,
                               concurrency=concurrency, name=f"{name}-{self.tag}@%h")
        self.processes.append(process)
        wait_ready(process, log_path)
        return process, log_path

    def consumer(self) -> Path:
        log_path = self.workdir / "consumer.log"
        process = start_worker("tests.outage_pipeline", self.env["JOBOPS_CALLBACK_QUEUE"],
                               self.env, log_path, concurrency=2,
                               name=f"consumer-{self.tag}@%h")
        self.processes.append(process)
        wait_ready(process, log_path)
        return log_path

    def verify(self, urns: list[str], countdown_seconds: float | None = None) -> None:
        """Send jobops.verify_job_operation by name, as a pipeline does."""
        self.sender.send_task(
            "jobops.verify_job_operation", queue=self.env["JOBOPS_QUEUE"],
            countdown=countdown_seconds,
            kwargs={"task_urns": urns, "operation": "CREATE",
                    "callbacks": {"DEFAULT": "outage.record"},
                    "context": {"test": self.tag}})

    def broker(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis.url, socket_connect_timeout=2)

    def kill_redis(self) -> None:
        self.redis.kill()

    def received(self) -> list[dict[str, Any]]:
        """Every callback the consumer ran, copies included."""
        return [json.loads(raw) for raw in self.store.lrange(record_key(self.tag), 0, -1)]

    def wait_for_outcomes(self, urns: list[str], timeout_seconds: float) -> dict[str, set[str]]:
        """Callback task ids per URN, once every URN has one."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            ids: dict[str, set[str]] = {}
            for entry in self.received():
                ids.setdefault(entry["task_urn"], set()).add(entry["task_id"])
            if set(ids) >= set(urns):
                return ids
            if time.monotonic() > deadline:
                missing = sorted(set(urns) - set(ids))
                pytest.fail(f"{len(missing)} of {len(urns)} URNs have no outcome after "
                            f"{timeout_seconds} s: {missing[:5]}")
            time.sleep(0.2)

    def close(self) -> None:
        for process in self.processes:
            stop(process, timeout_seconds=5)
        self.redis.stop()


def running_fleet(workdir: Path, store: redis.Redis) -> Iterator[Fleet]:
    """For a test module's ``fleet`` fixture: the fleet, closed after the test."""
    started = Fleet(workdir, store)
    try:
        yield started
    finally:
        started.close()


def wait_until(condition: Callable[[], object], what: str, timeout_seconds: float = 20) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_seconds} s: {what}"
        time.sleep(0.1)


def llen(client: redis.Redis, key: str) -> int:
    try:
        return int(client.llen(key))
    except redis.RedisError:
        return 0


def children(pid: int) -> set[int]:
    """A worker's pool processes."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return {int(child) for child in found.stdout.split()}


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False
