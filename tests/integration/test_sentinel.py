"""Redis with a replica and Sentinel, as production runs it: the primary is SIGKILLed in the
middle of a run and Sentinel promotes the replica. A primary, a replica and three
sentinels of the test's own (``redis-server``, ``--sentinel``) on loopback ports."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from kombu import Connection
from kombu.exceptions import OperationalError

from jobops.dev.processes import free_port
from sandbox import SandboxState
from tests.conftest import ExtraWorkers
from tests.jobs import posted_urns

pytestmark = pytest.mark.integration

MASTER = "jobops-test"


class Cluster:
    """A primary, its replica and three sentinels watching them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.primary, self.replica = free_port(), free_port()
        self.sentinels = [free_port() for _ in range(3)]

    def _start(self, port: int, *arguments: str) -> None:
        log = (self.directory / f"redis-{port}.log").open("wb")
        self.processes[port] = subprocess.Popen(
            ["redis-server", *arguments], stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_for(lambda: _answers(port), f"redis on {port}")

    def start(self) -> None:
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                  "--maxmemory-policy", "noeviction", "--dir", str(self.directory)]
        self._start(self.primary, "--port", str(self.primary), *common)
        self._start(self.replica, "--port", str(self.replica), *common,
                    "--replicaof", "127.0.0.1", str(self.primary))
        for port in self.sentinels:
            config = self.directory / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.primary} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 5000\n")
            self._start(port, str(config), "--sentinel")
        wait_for(self._watched, "the sentinels to see the replica and each other")

    def _watched(self) -> bool:
        for port in self.sentinels:
            with redis.Redis(port=port) as sentinel:
                if not sentinel.sentinel_slaves(MASTER) or \
                        len(sentinel.sentinel_sentinels(MASTER)) < 2:
                    return False
        return True

    def current_primary(self) -> int:
        with redis.Redis(port=self.sentinels[0]) as sentinel:
            return int(sentinel.sentinel_get_master_addr_by_name(MASTER)[1])

    @property
    def url(self) -> str:
        return ";".join(f"sentinel://127.0.0.1:{port}/0" for port in self.sentinels)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)


def _answers(port: int) -> bool:
    try:
        with redis.Redis(port=port, socket_connect_timeout=0.5) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def wait_for(condition: Callable[[], bool], what: str, timeout_seconds: float = 30) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout_seconds} s for {what}"
        time.sleep(0.1)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    started = Cluster(tmp_path)
    try:
        started.start()
        yield started
    finally:
        started.stop()


@pytest.fixture
def sentinel_workers(tmp_path: Path) -> Iterator[ExtraWorkers]:
    extra = ExtraWorkers(tmp_path)
    yield extra
    extra.stop_all()


def take_callbacks(url: str, queue: str, found: dict[str, list[str]]) -> None:
    """Move what waits on the pipeline's queue into ``found`` (task URN -> callback ids),
    reconnecting through the sentinels when the primary goes."""
    try:
        with Connection(url, transport_options={"master_name": MASTER}) as connection:
            simple = connection.SimpleQueue(queue)
            while True:
                try:
                    message = simple.get(timeout=0.5)
                except simple.Empty:
                    break
                outcome = message.payload[0][0]
                found[outcome["task_urn"]].append(message.headers["id"])
                message.ack()
            simple.close()
    except (OSError, redis.RedisError, OperationalError):
        pass  # the primary is moving: taken again next time


def test_a_failover_mid_run_loses_nothing_and_stops_no_worker(
        cluster: Cluster, sandbox: SandboxState, sentinel_workers: ExtraWorkers) -> None:
    queue, callback_queue = (f"{kind}-{uuid.uuid4().hex[:8]}" for kind in ("jobops", "pipeline"))
    sentinel_workers(concurrency=3, queue=queue, REDIS_URL=cluster.url,
                     CELERY_BROKER_URL=cluster.url, JOBOPS_REDIS_MASTER_NAME=MASTER,
                     JOBOPS_CALLBACK_QUEUE=callback_queue,
                     # Writes a failover loses include acknowledgements: what was
                     # unacknowledged comes back after this.
                     JOBOPS_VISIBILITY_TIMEOUT_SECONDS="20",
                     JOBOPS_FIRST_CHECK_SECONDS="1", JOBOPS_POLL_INTERVAL_SECONDS="1",
                     JOBOPS_MAX_POLL_INTERVAL_SECONDS="2")
    pipeline = Celery("pipeline", broker=cluster.url)
    pipeline.conf.broker_transport_options = {"master_name": MASTER}
    pipeline.conf.task_routes = {"jobops.*": {"queue": queue}}
    sandbox.config.in_progress_seconds = 3
    urns = posted_urns(300)
    with pipeline.producer_or_acquire() as producer:
        for urn in urns:
            pipeline.send_task("jobops.verify_job_operation", countdown=1, producer=producer,
                               kwargs={"task_urns": [urn], "operation": "CREATE",
                                       "callbacks": {"DEFAULT": "pipeline.job_outcome"}})
    pipeline.close()
    # What the pipeline sent is on the replica before the primary goes: a failover loses
    # the writes it had not copied yet, and only jobops' own can be made good.
    with redis.Redis(port=cluster.primary) as primary:
        assert primary.wait(1, 5000) == 1
    found: dict[str, list[str]] = defaultdict(list)
    wait_for(lambda: (take_callbacks(cluster.url, callback_queue, found), len(found))[1] > 30,
             "the first outcomes", timeout_seconds=60)
    old = cluster.primary
    cluster.processes[old].send_signal(signal.SIGKILL)
    wait_for(lambda: cluster.current_primary() == cluster.replica, "Sentinel's failover")
    wait_for(lambda: (take_callbacks(cluster.url, callback_queue, found), len(found))[1]
             >= len(urns), "every outcome", timeout_seconds=180)
    assert set(found) == set(urns)
    # Copies (a round run again after its acknowledgement was lost) come under the id of
    # the original callback: a consumer that drops ids it has seen sees each URN once.
    assert all(len(set(ids)) == 1 for ids in found.values()), \
        {urn: ids for urn, ids in found.items() if len(set(ids)) > 1}
    for _, process, _ in sentinel_workers._started:
        assert process.poll() is None, "a worker exited during the failover"
    copies = sum(len(ids) - 1 for ids in found.values())
    print(f"\n{len(urns)} URNs, {copies} copies under the original callback ids")
