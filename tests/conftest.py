"""Fixtures: a real Redis database, the sandbox over HTTP, real Celery worker processes.

The environment is set here, before anything reads settings, so the test process (which
schedules verifications) and the workers it starts agree on Redis, queues and the sandbox.
Redis: JOBOPS_TEST_REDIS_URL, default database 13 of the local server; it is flushed
(flushdb, never flushall) once per session.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from celery.signals import before_task_publish

from jobops.dev.processes import free_port, redis_answers, start_worker, stop, wait_ready
from sandbox import SandboxConfig, SandboxServer, SandboxState
from tests.env import REDIS_URL, SANDBOX_PORT, TEST_ENV
from tests.pipeline_app import app as pipeline_app

OUTCOMES_KEY = "test:outcomes:{}"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# A SIGTERM (a CI timeout, `timeout`) unwinds the fixtures, so the worker processes they
# started do not outlive the run and take work from the next one.
signal.signal(signal.SIGTERM, _interrupt)
CALLBACK_IDS_KEY = "test:callback-ids:{}"
BATCHES_KEY = "test:batches:{}"


def sandbox_defaults() -> SandboxConfig:
    return SandboxConfig(in_progress_seconds=1.0,
                         migrating_organizations=frozenset({"urn:li:organization:2002"}))


#: Markers of tests that need the local Redis (and, for most, workers and the sandbox).
NEEDS_REDIS = ("integration", "slow")


def _redis_missing() -> str | None:
    """Why the tests' Redis cannot be used, or None."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        return (f"Redis does not answer at {REDIS_URL} ({type(error).__name__}): start one "
                "(scripts/ensure-redis, or redis-server --daemonize yes) or set "
                "JOBOPS_TEST_REDIS_URL")
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without Redis a local run skips what needs it, saying why; under CI that is a
    failure, not a skip."""
    needing = [item for item in items
               if any(item.get_closest_marker(name) for name in NEEDS_REDIS)]
    if not needing or (why := _redis_missing()) is None:
        return
    if os.environ.get("CI"):
        pytest.exit(f"{why} (CI is set: the {len(needing)} tests that need it cannot be "
                    "skipped)", returncode=1)
    for item in needing:
        item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(scope="session")
def store() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    client.flushdb()
    return client


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    server = SandboxServer(SandboxState(sandbox_defaults()), port=SANDBOX_PORT)
    server.start_in_thread()
    yield server
    server.shutdown()


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> Iterator[SandboxState]:
    """The sandbox's state, with its configuration restored after each test."""
    state = sandbox_server.state
    state.config = sandbox_defaults()
    yield state
    state.config = sandbox_defaults()


@pytest.fixture(scope="session")
def workers(store: redis.Redis, sandbox_server: SandboxServer,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A jobops worker (3 processes) and a pipeline worker that records callbacks."""
    logs = tmp_path_factory.mktemp("workers")
    started = []
    try:
        for app, queue, concurrency in (("workers", TEST_ENV["JOBOPS_QUEUE"], 3),
                                        ("tests.pipeline_app", TEST_ENV["JOBOPS_CALLBACK_QUEUE"],
                                         2)):
            log_path = logs / f"{app}.log"
            process = start_worker(app, queue, TEST_ENV, log_path, concurrency=concurrency)
            started.append(process)
            wait_ready(process, log_path)
        yield {"jobops": logs / "workers.log", "pipeline": logs / "tests.pipeline_app.log"}
    finally:
        for process in started:
            stop(process)
    # A task that raised was retried, not lost, but it is a bug all the same.
    for log_path in logs.iterdir():
        crashes = [line for line in log_path.read_text(errors="replace").splitlines()
                   if "raised unexpected" in line or "failed; retrying" in line
                   or "Unrecoverable error" in line]
        assert not crashes, f"{log_path.name}: {crashes[:3]}"


class Recorder:
    """Collects the outcomes that the pipeline worker's callback recorded for one test."""

    def __init__(self, store: redis.Redis, tag: str) -> None:
        self.store, self.tag = store, tag
        self.context = {"test": tag}
        self.callbacks: dict[str, Any] = {"DEFAULT": "tests.record_outcome"}

    def outcomes(self) -> list[dict[str, Any]]:
        raw = self.store.lrange(OUTCOMES_KEY.format(self.tag), 0, -1)
        return [json.loads(item) for item in raw]

    def callback_ids(self) -> list[str]:
        return [i.decode() for i in self.store.lrange(CALLBACK_IDS_KEY.format(self.tag), 0, -1)]

    def batches(self) -> list[dict[str, Any]]:
        """The batches a BATCH callback (tests.record_batch) received with this test's
        outcomes: task id, size, received_at and the callback's own args."""
        return [json.loads(item) for item in self.store.lrange(BATCHES_KEY.format(self.tag),
                                                                 0, -1)]

    def batch_callback(self, batch_size: int, batch_seconds: float) -> dict[str, Any]:
        """A BATCH callback for this test: its own tag as an argument keeps its batches
        apart from other tests'."""
        return {"task": "tests.record_batch", "args": [self.tag], "batch_size": batch_size,
                "batch_seconds": batch_seconds}

    def wait(self, count: int, timeout_seconds: float = 60, settle_seconds: float = 1.0
             ) -> list[dict[str, Any]]:
        """Wait for ``count`` outcomes, then a moment more so a duplicate would show."""
        deadline = time.monotonic() + timeout_seconds
        while len(found := self.outcomes()) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"{len(found)} of {count} outcomes after {timeout_seconds} s: "
                            f"{sorted(o.get('task_urn') or '-' for o in found)[:10]}")
            time.sleep(0.1)
        time.sleep(settle_seconds)
        return self.outcomes()


def wait_for_line(log_path: Path, text: str, count: int = 1, timeout_seconds: float = 20
                  ) -> list[str]:
    """The first ``count`` lines of a worker's log holding ``text``, once there are as many."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        found = [line for line in log_path.read_text(errors="replace").splitlines()
                 if text in line]
        if len(found) >= count:
            return found[:count]
        if time.monotonic() > deadline:
            pytest.fail(f"{len(found)} of {count} lines with {text!r} in {log_path.name} "
                        f"after {timeout_seconds} s")
        time.sleep(0.1)


def wait_callbacks_run(store: redis.Redis, pipeline_log: Path, timeout_seconds: float = 30
                       ) -> None:
    """Until every callback published before this call has run.

    A marker sent now joins the back of the callback queue, which the pipeline worker takes
    in order: once the marker ran, whatever was ahead of it has been received (and logged
    so, before the marker), and only has to finish.
    """
    tag = f"marker-{uuid.uuid4().hex[:8]}"
    marker = pipeline_app.send_task("tests.record_outcome", args=[{"context": {"test": tag}}],
                                    queue=TEST_ENV["JOBOPS_CALLBACK_QUEUE"])
    deadline = time.monotonic() + timeout_seconds
    while not store.llen(OUTCOMES_KEY.format(tag)):
        assert time.monotonic() < deadline, f"the marker did not run in {timeout_seconds} s"
        time.sleep(0.05)
    while True:
        lines = pipeline_log.read_text(errors="replace").splitlines()
        marker_at = next(n for n, line in enumerate(lines)
                         if f"[{marker.id}] received" in line)
        ahead = Counter(m.group(1) for line in lines[:marker_at]
                        if (m := _RECEIVED.search(line)))
        ended = Counter(m.group(1) for line in lines if (m := _ENDED.search(line)))
        running = ahead - ended
        if not running:
            return
        assert time.monotonic() < deadline, f"callbacks still running: {list(running)[:5]}"
        time.sleep(0.05)


_RECEIVED = re.compile(r"Task [\w.]+\[([^\]]+)\] received")
_ENDED = re.compile(r"Task [\w.]+\[([^\]]+)\] (?:succeeded in|raised)")


@pytest.fixture
def recorder(store: redis.Redis, request: pytest.FixtureRequest) -> Recorder:
    return Recorder(store, f"{request.node.name}-{uuid.uuid4().hex[:6]}")


class ExtraWorkers:
    """Extra jobops workers, each with its own settings. Calling it starts one on a new
    queue (or on ``queue``, beside or after another) and returns the queue."""

    def __init__(self, logs: Path) -> None:
        self._logs = logs
        self._started: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def __call__(self, concurrency: int = 3, queue: str | None = None,
                 logfile: bool = False, **env: str) -> str:
        """``logfile``: log records go to the log (``logs``) and nothing else does: not
        Celery's banner, nor what is printed before logging is set up."""
        queue = queue or f"jobops-extra-{uuid.uuid4().hex[:8]}"
        earlier = len(self.logs(queue))
        name = queue if not earlier else f"{queue}-{earlier + 1}"
        log_path = self._logs / f"{name}.log"
        output = self._logs / f"{name}.out" if logfile else log_path
        process = start_worker("workers", queue, {**TEST_ENV, **env, "JOBOPS_QUEUE": queue},
                               output, concurrency=concurrency,
                               extra_args=[f"--logfile={log_path}"] if logfile else [])
        self._started.append((queue, process, log_path))
        wait_ready(process, log_path)
        return queue

    def logs(self, queue: str) -> list[Path]:
        """The logs of the workers started on ``queue``, first started first."""
        return [log_path for name, _, log_path in self._started if name == queue]

    def _signal(self, queue: str, signum: int) -> None:
        for name, process, _ in self._started:
            if name == queue and process.poll() is None:
                os.killpg(process.pid, signum)

    def pause(self, queue: str) -> None:
        """Freeze the workers on ``queue`` (SIGSTOP): what they hold stays unacknowledged."""
        self._signal(queue, signal.SIGSTOP)

    def resume(self, queue: str) -> None:
        self._signal(queue, signal.SIGCONT)

    def stop(self, queue: str) -> None:
        """Warm shutdown of the workers on ``queue``: held countdown tasks go back to it."""
        self.resume(queue)
        for name, process, _ in self._started:
            if name == queue:
                stop(process)

    def stop_all(self) -> None:
        for queue in {name for name, _, _ in self._started}:
            self.stop(queue)


@pytest.fixture
def jobops_worker(workers: dict[str, Path], tmp_path: Path) -> Iterator[ExtraWorkers]:
    """Start extra jobops workers with their own settings; each call returns its queue."""
    extra = ExtraWorkers(tmp_path)
    yield extra
    extra.stop_all()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start a Redis of the test's own (a config the shared one must not get: an eviction
    policy, a password) on a free loopback port; returns its URL."""
    started = []

    def start(*options: str, password: str | None = None) -> str:
        port = free_port()
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(tmp_path), *options]
        if password:
            command += ["--requirepass", password]
        log_path = tmp_path / f"redis-{port}.log"
        process = subprocess.Popen(command, stdout=log_path.open("wb"),
                                   stderr=subprocess.STDOUT, start_new_session=True)
        started.append(process)
        url = f"redis://{f':{password}@' if password else ''}127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while not redis_answers(url):
            assert process.poll() is None and time.monotonic() < deadline, \
                log_path.read_text(errors="replace")
            time.sleep(0.05)
        return url

    yield start
    for process in started:
        stop(process)


@pytest.fixture
def published() -> Iterator[list[str]]:
    """Names of the tasks this process publishes while the test runs."""
    names: list[str] = []

    def record(sender: str | None = None, **_: Any) -> None:
        names.append(str(sender))

    before_task_publish.connect(record, weak=False)
    yield names
    before_task_publish.disconnect(record)


@pytest.fixture
def published_ids() -> Iterator[list[tuple[str, str]]]:
    """(task name, task id) of each message this process publishes while the test runs."""
    sent: list[tuple[str, str]] = []

    def record(sender: str | None = None, headers: dict[str, Any] | None = None,
               **_: Any) -> None:
        sent.append((str(sender), str((headers or {}).get("id"))))

    before_task_publish.connect(record, weak=False)
    yield sent
    before_task_publish.disconnect(record)


FLOWER_AUTH = ("ops", "flower-test-password")


@pytest.fixture(scope="session")
def flower_server(workers: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Flower against the test broker, behind a login; yields its process and URL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("flower") / "flower.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers", "flower", f"--port={port}",
         "--address=127.0.0.1"],
        # Flower reads its login from the environment, where ps does not show it.
        env={**os.environ, **TEST_ENV, "FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH)},
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_listed(process, url, {worker_name(path) for path in workers.values()})
        _wait_task_events(process, url)
    except AssertionError as error:
        stop(process)
        raise RuntimeError(f"{error}; Flower's log:\n{log_path.read_text()}") from None
    except BaseException:
        stop(process)
        raise
    yield process, url
    stop(process)


def _flower_api(process: subprocess.Popen[bytes], url: str, path: str, **params: str
                ) -> requests.Response | None:
    """Flower's answer, behind its login; None while it does not listen yet."""
    assert process.poll() is None, "Flower exited"
    try:
        return requests.get(url + path, auth=FLOWER_AUTH, params=params, timeout=5)
    except requests.ConnectionError:
        return None


def _wait_listed(process: subprocess.Popen[bytes], url: str, names: set[str],
                 timeout_seconds: float = 60) -> None:
    """Until Flower answers an authenticated call with this session's workers."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        answer = _flower_api(process, url, "/api/workers", refresh="1")
        if answer is not None and answer.status_code == 200 and names <= set(answer.json()):
            return
        assert time.monotonic() < deadline, f"Flower never listed {names}"
        time.sleep(0.2)


def _wait_task_events(process: subprocess.Popen[bytes], url: str,
                      timeout_seconds: float = 30) -> None:
    """Until Flower sees what tasks do: workers send task events only once it switches
    them on (JOBOPS_TASK_EVENTS is off), 5 s after it starts and every 5 s after that.
    A probe run on the jobops worker shows when; one run before then is never seen."""
    from workers import app

    deadline = time.monotonic() + timeout_seconds
    while True:
        probe = app.send_task("celery.accumulate", args=[1], queue=TEST_ENV["JOBOPS_QUEUE"])
        seen_by = time.monotonic() + 2
        while time.monotonic() < seen_by:
            answer = _flower_api(process, url, f"/api/task/info/{probe.id}")
            if answer is not None and answer.status_code == 200 \
                    and answer.json().get("state") == "SUCCESS":
                return
            time.sleep(0.2)
        assert time.monotonic() < deadline, "Flower never saw a task's events"


def worker_name(log_path: Path) -> str:
    """The node name a worker's log gives when it is ready."""
    for line in log_path.read_text(errors="replace").splitlines():
        if line.endswith(" ready."):
            return line.rsplit("] ", 1)[-1].removesuffix(" ready.")
    raise AssertionError(f"{log_path.name} has no ready line")


@pytest.fixture(scope="session")
def flower(flower_server: tuple[subprocess.Popen[bytes], str]) -> str:
    """The URL of the test session's Flower."""
    return flower_server[1]


@pytest.fixture
def bench_worker(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Start a benchmark baseline's worker (``bench.card``, ``bench.floor``) on a queue of
    its own, with the tests' settings; returns the queue."""
    started: list[subprocess.Popen[bytes]] = []

    def start(app: str) -> str:
        queue = f"{app.rsplit('.', 1)[-1]}-{uuid.uuid4().hex[:8]}"
        log_path = tmp_path / f"{queue}.log"
        process = start_worker(app, queue, {**TEST_ENV, "JOBOPS_QUEUE": queue}, log_path,
                               concurrency=2)
        started.append(process)
        wait_ready(process, log_path)
        return queue

    yield start
    for process in started:
        stop(process)
