"""RabbitMQ as the broker, Redis as the state: a quorum queue, countdowns and retries in
RabbitMQ's delay exchanges, callbacks to a pipeline's own queue. A real RabbitMQ
(127.0.0.1:5672, guest/guest) in a vhost of the test's own; skipped where none answers,
failing when CI is set."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests
from celery import Celery
from kombu import Connection, Producer, Queue

from jobops.dev.processes import free_port, stop
from sandbox import SandboxState
from tests.conftest import FLOWER_AUTH, ExtraWorkers
from tests.env import TEST_ENV
from tests.jobs import job, post, task_urns
from workers.release import Confirms

pytestmark = pytest.mark.integration

RABBITMQ = ("127.0.0.1", 5672)


def _rabbitmq_missing() -> str | None:
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not installed (it makes each test's vhost)"
    try:
        socket.create_connection(RABBITMQ, timeout=2).close()
    except OSError as error:
        return f"RabbitMQ does not answer at {RABBITMQ[0]}:{RABBITMQ[1]} ({error})"
    return None


def _rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def vhost() -> Iterator[str]:
    """A vhost of the test's own; its URL."""
    if (why := _rabbitmq_missing()) is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI is set, so this is a failure, not a skip")
        pytest.skip(why)
    name = f"jobops-test-{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield f"amqp://guest:guest@127.0.0.1:5672/{name}"
    _rabbitmqctl("delete_vhost", name)


def queue_types(vhost_url: str) -> dict[str, str]:
    out = _rabbitmqctl("list_queues", "-p", vhost_url.rsplit("/", 1)[1], "name", "type")
    return dict(line.split("\t")[:2] for line in out.splitlines() if "\t" in line)


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_rabbitmq_snippet() -> str:
    """The README's block for a pipeline on RabbitMQ ("Scaling out")."""
    section = README.read_text().split("### Scaling out", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block and "x-queue-type" in block.group(1), "README lost its RabbitMQ snippet"
    return block.group(1)


def once(text: str, old: str, new: str, times: int = 1) -> str:
    assert text.count(old) == times, f"README snippet holds {old!r} {text.count(old)} times"
    return text.replace(old, new)


def pipeline_app(broker: str, jobops_queue: str, callback_queue: str) -> Celery:
    """The README's pipeline on RabbitMQ, its snippet run as written but for the queue
    names (the test's own), and its own queue given an argument jobops must keep."""
    snippet = once(readme_rabbitmq_snippet(), '"jobops"', repr(jobops_queue), times=4)
    snippet = once(snippet, 'Queue("pipeline")',
                   f"Queue({callback_queue!r}, queue_arguments={{'x-max-length': 10_000}})")
    app = Celery("pipeline", broker=broker)
    exec(snippet, {"app": app})  # noqa: S102 - the README's own code, as a pipeline runs it
    with app.connection_for_write() as connection:
        for queue in app.conf.task_queues:
            queue(connection.default_channel).declare()
    return app


def callbacks(broker: str, queue: str, count: int | None, timeout_seconds: float = 60
              ) -> list[dict]:
    """Take callback messages off the pipeline's queue: ``count`` of them (failing after
    ``timeout_seconds``), or with ``count`` None all that come within ``timeout_seconds``."""
    found: list[dict] = []
    deadline = time.monotonic() + timeout_seconds
    with Connection(broker) as connection:
        simple = connection.SimpleQueue(Queue(queue, queue_arguments={"x-max-length": 10_000}))
        while count is None or len(found) < count:
            if time.monotonic() > deadline:
                assert count is None, f"{len(found)} of {count} callbacks: {found}"
                break
            try:
                message = simple.get(timeout=0.5)
            except simple.Empty:
                continue
            found.append({"task": message.headers["task"], "id": message.headers["id"],
                          "outcome": message.payload[0][0]})
            message.ack()
        simple.close()
    return found


def received_at(log: Path, task_id: str) -> list[float]:
    """When the worker received each message of ``task_id`` (its log's clock)."""
    stamps = re.findall(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/MainProcess\] Task "
                        rf"jobops\.verify_job_operation\[{task_id}\] received",
                        log.read_text(errors="replace"))
    return [time.mktime(time.strptime(s[:19], "%Y-%m-%d %H:%M:%S")) + int(s[20:]) / 1000
            for s in stamps]


def send_single_jobs_and_wait_for_a_retry(pipeline: Celery, urns: list[str], log: Path) -> None:
    """One verification per URN, by name, 1 s countdown; returns once one has retried:
    rounds then wait in RabbitMQ's delay queues while others run."""
    for urn in urns:
        pipeline.send_task("jobops.verify_job_operation", countdown=1, kwargs={
            "task_urns": [urn], "operation": "CREATE",
            "callbacks": {"DEFAULT": "pipeline.job_outcome"}})
    deadline = time.monotonic() + 30
    while "retry: Retry" not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, "no verification retried"
        time.sleep(0.1)


class RabbitWorkers(ExtraWorkers):
    """jobops workers on RabbitMQ, their state in a Redis of the test's own: a fleet never
    shares its Redis with another (the session's fleet on the Redis broker would take
    this one's due URNs as companions and deliver them through its own broker)."""

    def __init__(self, directory: Path, redis_url: str) -> None:
        super().__init__(directory)
        self.redis_url = redis_url

    def __call__(self, concurrency: int = 3, queue: str | None = None,
                 logfile: bool = False, **env: str) -> str:
        return super().__call__(concurrency, queue, logfile,
                                **{"REDIS_URL": self.redis_url, **env})


@pytest.fixture
def rabbit_workers(tmp_path: Path, redis_server: Callable[..., str]
                   ) -> Iterator[RabbitWorkers]:
    extra = RabbitWorkers(tmp_path, redis_server())
    yield extra
    extra.stop_all()


@dataclass
class Started:
    pipeline: Celery
    queue: str
    callback_queue: str
    settings: dict[str, str]


def start_fleet(broker: str, workers: RabbitWorkers, concurrency: int = 2,
                poll_seconds: str = "1") -> Started:
    """The pipeline's side first, as in production (its queues exist when jobops starts),
    then a jobops worker on the same broker."""
    queue, callback_queue = (f"{kind}-{uuid.uuid4().hex[:8]}" for kind in ("jobops", "pipeline"))
    pipeline = pipeline_app(broker, queue, callback_queue)
    settings = {"CELERY_BROKER_URL": broker, "JOBOPS_CALLBACK_QUEUE": callback_queue,
                "JOBOPS_POLL_INTERVAL_SECONDS": poll_seconds,
                "JOBOPS_MAX_POLL_INTERVAL_SECONDS": "1"}
    workers(concurrency=concurrency, queue=queue, **settings)
    return Started(pipeline, queue, callback_queue, settings)


def test_a_verification_waits_in_rabbitmq_and_retries_for_several_rounds(
        vhost: str, sandbox: SandboxState, rabbit_workers: RabbitWorkers) -> None:
    fleet = start_fleet(vhost, rabbit_workers, poll_seconds="0.5")
    pipeline, queue, callback_queue = fleet.pipeline, fleet.queue, fleet.callback_queue
    sandbox.config.in_progress_seconds = 10
    urns = task_urns(post([job(), job(location="Atlantis")], "CREATE"))
    verification = str(uuid.uuid4())
    sent_at = time.time()
    pipeline.send_task("jobops.verify_job_operation", countdown=3, task_id=verification,
                       kwargs={"task_urns": urns, "operation": "CREATE",
                               "callbacks": {"DEFAULT": "pipeline.job_outcome"}})
    found = callbacks(vhost, callback_queue, 2)
    assert {f["task"] for f in found} == {"pipeline.job_outcome"}
    assert sorted(f["outcome"]["task_urn"] for f in found) == sorted(urns)
    assert sorted(f["outcome"]["status"] for f in found) == ["FAILED", "SUCCEEDED"]
    types = queue_types(vhost)
    assert types[queue] == "quorum"
    assert types[callback_queue] == "classic", "the pipeline's queue kept as declared"
    [log] = rabbit_workers.logs(queue)
    rounds = received_at(log, verification)
    # Held by RabbitMQ, not the worker: the first message reached it only when due. Each
    # next round waited in Redis for its second's release (sub-second waits go as whole
    # seconds), and reached the worker once due.
    assert rounds[0] >= sent_at + 3 - 0.2, (sent_at, rounds)
    assert len(rounds) >= 4, f"{len(rounds)} rounds: the task should have retried"
    assert all(b - a >= 0.9 for a, b in zip(rounds, rounds[1:], strict=False)), rounds
    text = log.read_text()
    assert "countdown must be a positive number" not in text
    assert text.count(f"jobops.verify_job_operation[{verification}] retry: Retry in") \
        == len(rounds) - 1, "every round but the last reported as a retry (Flower shows it)"


def test_celery_retries_keep_their_routing_key(vhost: str, sandbox: SandboxState,
                                               rabbit_workers: RabbitWorkers) -> None:
    """A round held by another copy is retried by Celery itself, through the delay
    exchanges, with the routing key it arrived with: kombu #2556's prefix, growing on each
    such retry, would pass AMQP's 255 bytes by the fifth and the retry could not be
    published."""
    fleet = start_fleet(vhost, rabbit_workers)
    [urn] = task_urns(post([job()], "CREATE"))
    verification = str(uuid.uuid4())
    state = redis.Redis.from_url(rabbit_workers.redis_url)
    lease = f"jobops:run:{verification}:0"
    # Another copy runs round 0, its lease renewed, until the message retried six times.
    state.set(lease, "running:another-copy", px=800)
    fleet.pipeline.send_task("jobops.verify_job_operation", countdown=1, task_id=verification,
                             kwargs={"task_urns": [urn], "operation": "CREATE",
                                     "callbacks": {"DEFAULT": "pipeline.job_outcome"}})
    [log] = rabbit_workers.logs(fleet.queue)
    deadline = time.monotonic() + 60
    while len(received_at(log, verification)) < 7:
        assert time.monotonic() < deadline, received_at(log, verification)
        state.set(lease, "running:another-copy", px=800)
        time.sleep(0.2)
    state.delete(lease)
    [found] = callbacks(vhost, fleet.callback_queue, 1)
    assert found["outcome"]["task_urn"] == urn
    assert "is running elsewhere" in log.read_text()


def test_a_killed_worker_loses_nothing(vhost: str, sandbox: SandboxState,
                                       rabbit_workers: RabbitWorkers) -> None:
    fleet = start_fleet(vhost, rabbit_workers)
    sandbox.config.in_progress_seconds = 3
    urns = task_urns(post([job() for _ in range(6)], "CREATE"))
    send_single_jobs_and_wait_for_a_retry(fleet.pipeline, urns, rabbit_workers.logs(fleet.queue)[0])
    # Mid-run, with retries waiting in RabbitMQ's delay queues and rounds unacknowledged.
    for _, process, _ in rabbit_workers._started:
        os.killpg(process.pid, signal.SIGKILL)
    rabbit_workers(concurrency=2, queue=fleet.queue, **fleet.settings)
    found = callbacks(vhost, fleet.callback_queue, 6, timeout_seconds=90)
    assert sorted(f["outcome"]["task_urn"] for f in found) == sorted(urns)
    assert {f["outcome"]["status"] for f in found} == {"SUCCEEDED"}


def test_a_lost_broker_connection_loses_nothing_and_doubles_nothing(
        vhost: str, sandbox: SandboxState, rabbit_workers: RabbitWorkers) -> None:
    """RabbitMQ closes every connection of the vhost (as a node restart does to clients)
    while rounds wait in its delay queues and run in the worker: the worker reconnects,
    and every URN gets one outcome, under one callback id."""
    fleet = start_fleet(vhost, rabbit_workers)
    callback_queue = fleet.callback_queue
    sandbox.config.in_progress_seconds = 4
    urns = task_urns(post([job() for _ in range(8)], "CREATE"))
    [log] = rabbit_workers.logs(fleet.queue)
    send_single_jobs_and_wait_for_a_retry(fleet.pipeline, urns, log)
    _rabbitmqctl("close_all_connections", "-p", vhost.rsplit("/", 1)[1], "test: broker gone")
    found = callbacks(vhost, callback_queue, 8, timeout_seconds=90)
    assert sorted(f["outcome"]["task_urn"] for f in found) == sorted(urns)
    assert {f["outcome"]["status"] for f in found} == {"SUCCEEDED"}
    # Nothing more comes: a second callback for a URN would be a copy.
    assert callbacks(vhost, callback_queue, None, timeout_seconds=3) == []
    text = log.read_text(errors="replace")
    assert "Connection to broker lost" in text or "connection lost" in text.lower(), \
        "the worker should have seen the connection go"


def schedule_in_own_process(settings: dict[str, str], redis_url: str, urns: list[str],
                            countdown_seconds: float) -> float:
    """``verify_urns`` for each URN, one single-job operation at a time, in a process that
    exits as soon as it has scheduled them (as a pipeline's task does); returns when it
    scheduled the first."""
    script = ("import json, sys, time\nfrom workers.scheduling import verify_urns\n"
              "print(time.time(), flush=True)\n"
              "for urn in json.loads(sys.stdin.read()):\n"
              "    verify_urns([urn], 'CREATE', {'DEFAULT': 'pipeline.job_outcome'},\n"
              f"                countdown_seconds={countdown_seconds})\n")
    done = subprocess.run([sys.executable, "-c", script], input=json.dumps(urns),
                          env={**os.environ, **TEST_ENV, **settings, "REDIS_URL": redis_url},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return float(done.stdout.split()[0])


def delay_queue_messages(vhost: str) -> int:
    rows = [line.split("\t") for line in _rabbitmqctl(
        "list_queues", "-p", vhost.rsplit("/", 1)[1], "name", "messages").splitlines()]
    return sum(int(n) for name, n in rows if name.startswith("celery_delayed"))


def test_operations_due_in_the_same_second_share_one_countdown_message(
        vhost: str, rabbit_workers: RabbitWorkers) -> None:
    """3,000 single-job operations an hour away: each waits in Redis, and RabbitMQ's delay
    queues hold one release message per second they fall due in, each there once
    scheduling returned (publisher confirms: without them RabbitMQ dropped about a quarter
    of the countdown messages still in flight when the scheduler's connection closed)."""
    # A worker declares the delay exchanges and binds the queue to them.
    fleet = start_fleet(vhost, rabbit_workers, concurrency=1)
    settings = {**fleet.settings, "JOBOPS_QUEUE": fleet.queue}
    count = 3000
    urns = [f"urn:li:simpleJobPostingTask:{uuid.uuid4()}" for _ in range(count)]
    started = time.time()
    schedule_in_own_process(settings, rabbit_workers.redis_url, urns, 3600)
    seconds = time.time() - started
    state = redis.Redis.from_url(rabbit_workers.redis_url)
    assert state.zcard("jobops:held") == count
    releases = list(state.scan_iter(match="jobops:release:*"))
    assert 1 <= len(releases) <= seconds + 2, (len(releases), seconds)
    # rabbitmqctl's counts trail by a few seconds.
    deadline = time.monotonic() + 30
    while (waiting := delay_queue_messages(vhost)) < len(releases) \
            and time.monotonic() < deadline:
        time.sleep(1)
    assert waiting == len(releases)


def registered(state: redis.Redis) -> tuple[int, int, int]:
    """Held rounds, pending rounds and URN counts, read at one moment."""
    with state.pipeline(transaction=True) as pipe:
        pipe.zcard("jobops:held")
        pipe.zcard("jobops:pending")
        pipe.hlen("jobops:pending:urns")
        held, pending, urns = pipe.execute()
    return held, pending, urns


def leftovers(state: redis.Redis) -> dict[str, object]:
    """What is left of each held or pending verification: its score, its arguments, its
    rounds' leases."""
    found: dict[str, object] = {}
    for name in ("jobops:held", "jobops:pending"):
        for member, score in state.zrange(name, 0, -1, withscores=True):
            verification_id = member.decode()
            found[f"{name} {verification_id}"] = {
                "score": score, "args": state.get(f"jobops:pending:{verification_id}"),
                "leases": {key.decode(): state.get(key) for key in
                           state.scan_iter(match=f"jobops:run:{verification_id}:*")}}
    return found


def test_held_operations_each_get_one_outcome(vhost: str, sandbox: SandboxState,
                                              rabbit_workers: RabbitWorkers) -> None:
    """Single-job operations scheduled with ``verify_urns`` from another process, a few
    seconds away: released when due, polled, one outcome each and no copy."""
    fleet = start_fleet(vhost, rabbit_workers)
    sandbox.config.in_progress_seconds = 3
    urns = [urn for _ in range(2) for urn in task_urns(post([job() for _ in range(100)],
                                                             "CREATE"))]
    started = schedule_in_own_process({**fleet.settings, "JOBOPS_QUEUE": fleet.queue},
                                      rabbit_workers.redis_url, urns, 2)
    found = callbacks(vhost, fleet.callback_queue, len(urns), timeout_seconds=90)
    assert sorted(f["outcome"]["task_urn"] for f in found) == sorted(urns)
    assert {f["outcome"]["status"] for f in found} == {"SUCCEEDED"}
    assert callbacks(vhost, fleet.callback_queue, None, timeout_seconds=3) == []
    # Held until due: none was checked before its countdown ran out.
    first_check = min(call.at for call in sandbox.calls if set(call.asked()) & set(urns))
    assert first_check >= started + 2, first_check - started
    # Every verification ended: nothing held, nothing pending, once the last round's
    # writes (which follow its callbacks) are in.
    state = redis.Redis.from_url(rabbit_workers.redis_url)
    deadline = time.monotonic() + 30
    while (left := registered(state)) != (0, 0, 0):
        assert time.monotonic() < deadline, (left, leftovers(state))
        time.sleep(0.1)


def test_a_release_waits_for_every_publish_on_its_channel(vhost: str,
                                                         rabbit_workers: RabbitWorkers) -> None:
    """With task-sent events on, Celery publishes an event after each task on the same
    channel: a release that waited for as many confirmations as tasks would let half its
    messages go unconfirmed."""
    fleet = start_fleet(vhost, rabbit_workers, concurrency=1)
    app = fleet.pipeline
    app.conf.task_send_sent_event = True
    with app.connection_for_write() as connection:
        channel = connection.channel()
        channel.confirm_select()
        confirms = Confirms(channel)
        producer = Producer(channel)
        for _ in range(20):
            app.send_task("celery.accumulate", args=[1], queue=fleet.queue, producer=producer)
        assert confirms.published == 40
        confirms.wait(connection, 10)
        assert confirms.unconfirmed() == 0
        channel.close()


def test_post_answers_scheduled_by_name_are_held_and_each_urn_gets_one_outcome(
        vhost: str, sandbox: SandboxState, rabbit_workers: RabbitWorkers) -> None:
    """The README's path: a pipeline sends ``jobops.schedule_verification`` by name with
    each POST answer (one job each) and a first check a few seconds away. On RabbitMQ the
    verifications wait in Redis for their second's release message: one countdown message
    per second, not per answer."""
    fleet = start_fleet(vhost, rabbit_workers)
    sandbox.config.in_progress_seconds = 2
    answers = [post([job()], "CREATE") for _ in range(40)]
    for answer in answers:
        fleet.pipeline.send_task("jobops.schedule_verification", args=[answer, "CREATE"],
                                 kwargs={"callbacks": {"DEFAULT": "pipeline.job_outcome"},
                                         "countdown_seconds": 2})
    urns = [urn for answer in answers for urn in task_urns(answer)]
    found = callbacks(vhost, fleet.callback_queue, len(urns), timeout_seconds=60)
    assert sorted(f["outcome"]["task_urn"] for f in found) == sorted(urns)
    assert callbacks(vhost, fleet.callback_queue, None, timeout_seconds=2) == []
    state = redis.Redis.from_url(rabbit_workers.redis_url)
    releases = list(state.scan_iter(match="jobops:release:*"))
    assert 1 <= len(releases) < len(answers), len(releases)


def test_batches_and_a_poison_message_on_rabbitmq(vhost: str, sandbox: SandboxState,
                                                 rabbit_workers: RabbitWorkers) -> None:
    """The flusher and the poison handling need no Redis broker: a message no retry can
    fix is logged and dropped, and single-job operations with a BATCH callback arrive in
    batches, each outcome in exactly one."""
    fleet = start_fleet(vhost, rabbit_workers)
    sandbox.config.in_progress_seconds = 1
    poison = fleet.pipeline.send_task("jobops.verify_job_operation", kwargs={
        "task_urns": "urn:li:simpleJobPostingTask:not-a-list", "operation": "CREATE"})
    answers = [post([job()], "CREATE") for _ in range(60)]
    batch = {"task": "pipeline.job_outcomes", "batch_size": 20, "batch_seconds": 1}
    for answer in answers:
        fleet.pipeline.send_task("jobops.schedule_verification", args=[answer, "CREATE"],
                                 kwargs={"callbacks": {"BATCH": batch},
                                         "countdown_seconds": 1})
    urns = sorted(urn for answer in answers for urn in task_urns(answer))
    batches: list[dict] = []
    deadline = time.monotonic() + 60
    while sum(len(b["outcome"]) for b in batches) < len(urns):
        assert time.monotonic() < deadline, batches
        batches += callbacks(vhost, fleet.callback_queue, None, timeout_seconds=1)
    assert {b["task"] for b in batches} == {"pipeline.job_outcomes"}
    assert all(len(b["outcome"]) <= 20 for b in batches)
    assert sorted(o["task_urn"] for b in batches for o in b["outcome"]) == urns
    [log] = rabbit_workers.logs(fleet.queue)
    assert f"verification {poison.id} rejected" in log.read_text()


def test_held_operations_no_release_message_lets_out_are_sent_by_the_sweeper(
        vhost: str, sandbox: SandboxState, rabbit_workers: RabbitWorkers) -> None:
    """The scheduler that was to send a second's release message died before sending it
    (its marker says sent): the sweeper sends those rounds, a few seconds late."""
    queue, callback_queue = (f"{kind}-{uuid.uuid4().hex[:8]}" for kind in ("jobops", "pipeline"))
    pipeline_app(vhost, queue, callback_queue)
    settings = {"CELERY_BROKER_URL": vhost, "JOBOPS_CALLBACK_QUEUE": callback_queue,
                "JOBOPS_POLL_INTERVAL_SECONDS": "1", "JOBOPS_MAX_POLL_INTERVAL_SECONDS": "1",
                "JOBOPS_SWEEP_INTERVAL_SECONDS": "1"}
    rabbit_workers(concurrency=2, queue=queue, **settings)
    sandbox.config.in_progress_seconds = 1
    state = redis.Redis.from_url(rabbit_workers.redis_url)
    now = int(time.time())
    for second in range(now - 5, now + 60):
        state.set(f"jobops:release:{second}", "1", ex=120)
    urns = task_urns(post([job() for _ in range(20)], "CREATE"))
    schedule_in_own_process({**settings, "JOBOPS_QUEUE": queue}, rabbit_workers.redis_url,
                            urns, 1)
    found = callbacks(vhost, callback_queue, len(urns), timeout_seconds=60)
    assert sorted(f["outcome"]["task_urn"] for f in found) == sorted(urns)
    [log] = rabbit_workers.logs(queue)
    text = log.read_text()
    assert "held verifications that no release message let out" in text
    assert "jobops.release_held[" not in text, "no release message was to be sent"


def flower_info(url: str, task_id: str) -> dict | None:
    try:
        answer = requests.get(f"{url}/api/task/info/{task_id}", auth=FLOWER_AUTH, timeout=5)
    except requests.ConnectionError:
        return None  # not listening yet
    return answer.json() if answer.status_code == 200 else None


def wait_flower_state(url: str, task_id: str, states: set[str],
                      send: Callable[[], object] | None = None, timeout_seconds: float = 60
                      ) -> dict:
    """Until Flower shows ``task_id`` in one of ``states``; ``send`` sends it again every
    2 s (workers send task events only once Flower switches them on)."""
    deadline = time.monotonic() + timeout_seconds
    resend_at = 0.0
    while True:
        if send is not None and time.monotonic() >= resend_at:
            send()
            resend_at = time.monotonic() + 2
        info = flower_info(url, task_id)
        if info is not None and info.get("state") in states:
            return info
        assert time.monotonic() < deadline, f"Flower never showed {task_id} as {states}"
        time.sleep(0.2)


def test_flower_on_rabbitmq_shows_held_rounds_as_retries_and_their_releases(
        vhost: str, sandbox: SandboxState, rabbit_workers: RabbitWorkers,
        tmp_path: Path) -> None:
    fleet = start_fleet(vhost, rabbit_workers)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    flower = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers", "flower", f"--port={port}",
         "--address=127.0.0.1"],
        env={**os.environ, **TEST_ENV, **fleet.settings, "JOBOPS_QUEUE": fleet.queue,
             "REDIS_URL": rabbit_workers.redis_url,
             "FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH)},
        stdout=(tmp_path / "flower.log").open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        probe = str(uuid.uuid4())
        wait_flower_state(url, probe, {"SUCCESS"}, send=lambda: fleet.pipeline.send_task(
            "celery.accumulate", args=[1], queue=fleet.queue, task_id=probe))
        # Several rounds, each a second or two apart: Flower shows RETRY between them.
        sandbox.config.in_progress_seconds = 6
        answer = post([job(), job()], "CREATE")
        scheduled = fleet.pipeline.send_task(
            "jobops.schedule_verification", args=[answer, "CREATE"],
            kwargs={"callbacks": {"DEFAULT": "pipeline.job_outcome"},
                    "countdown_seconds": 1})
        scheduled_info = wait_flower_state(url, scheduled.id, {"SUCCESS"})
        verification = re.search(r"'verification_id': '([0-9a-f-]{36})'",
                                 scheduled_info["result"]).group(1)
        retried = wait_flower_state(url, verification, {"RETRY"})
        assert retried["name"] == "jobops.verify_job_operation"
        assert "URNs still IN_PROGRESS, next check in" in retried["exception"]
        callbacks(vhost, fleet.callback_queue, 2)
        done = wait_flower_state(url, verification, {"SUCCESS"})
        assert "'SUCCEEDED': 2" in done["result"]
        tasks = requests.get(f"{url}/api/tasks", auth=FLOWER_AUTH, timeout=5,
                             params={"taskname": "jobops.release_held"}).json()
        assert tasks and all(t["state"] == "SUCCESS" for t in tasks.values()), tasks
    finally:
        stop(flower)


class OwnRabbitMQ:
    """A RabbitMQ node of the test's own (its ports, its data directory), so that it can be
    restarted without touching the machine's: ``rabbitmq-server`` with every path moved."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port, self.dist_port = free_port(), free_port()
        self.node = f"jobopstest{uuid.uuid4().hex[:6]}@localhost"
        for sub in ("mnesia", "log", "gen", "schema", "plugins-expand"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        (directory / "enabled_plugins").write_text("[].")
        (directory / "rabbitmq.conf").write_text("")
        # The server runs as the rabbitmq user (Debian's wrapper drops to it).
        subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(directory)], check=True)
        mnesia = directory / "mnesia" / "node"
        self.env = {**os.environ,
                    "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_PORT": str(self.port),
                    "RABBITMQ_DIST_PORT": str(self.dist_port),
                    "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
                    "RABBITMQ_MNESIA_DIR": str(mnesia),
                    "RABBITMQ_QUORUM_DIR": str(mnesia / "quorum"),
                    "RABBITMQ_STREAM_DIR": str(mnesia / "stream"),
                    "RABBITMQ_LOG_BASE": str(directory / "log"),
                    "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
                    "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq"),
                    "RABBITMQ_FEATURE_FLAGS_FILE": str(directory / "feature_flags"),
                    "RABBITMQ_PLUGINS_EXPAND_DIR": str(directory / "plugins-expand"),
                    "RABBITMQ_GENERATED_CONFIG_DIR": str(directory / "gen"),
                    "RABBITMQ_SCHEMA_DIR": str(directory / "schema"),
                    "RABBITMQ_PID_FILE": str(directory / "pid")}
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self) -> None:
        log = (self.directory / "server.out").open("ab")
        subprocess.Popen(["rabbitmq-server"], env=self.env, stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, (self.directory / "server.out").read_text()
                time.sleep(0.2)

    def stop(self) -> None:
        subprocess.run(["rabbitmqctl", "-n", self.node, "stop"], env=self.env,
                       capture_output=True, timeout=60)

    def restart(self) -> None:
        """The whole node down and up again, its data kept."""
        self.stop()
        self.start()


@pytest.fixture
def own_rabbitmq() -> Iterator[OwnRabbitMQ]:
    if (why := _rabbitmq_missing()) is None and shutil.which("rabbitmq-server") is None:
        why = "rabbitmq-server is not installed (the test restarts a node of its own)"
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI is set, so this is a failure, not a skip")
        pytest.skip(why)
    # Outside pytest's tmp_path: its parents are root's alone, and the server runs as the
    # rabbitmq user.
    directory = Path(tempfile.mkdtemp(prefix="jobops-rabbitmq-"))
    directory.chmod(0o755)
    node = OwnRabbitMQ(directory)
    node.start()
    try:
        yield node
    finally:
        node.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_a_broker_restart_mid_run_loses_nothing(
        own_rabbitmq: OwnRabbitMQ, sandbox: SandboxState, rabbit_workers: RabbitWorkers
        ) -> None:
    """The node stops and starts again while rounds wait in its delay queues (quorum
    queues, on disk) and run in the worker: the worker reconnects, every URN gets one
    outcome."""
    broker = own_rabbitmq.url
    fleet = start_fleet(broker, rabbit_workers)
    pipeline, callback_queue = fleet.pipeline, fleet.callback_queue
    sandbox.config.in_progress_seconds = 6
    urns = task_urns(post([job() for _ in range(8)], "CREATE"))
    [log] = rabbit_workers.logs(fleet.queue)
    send_single_jobs_and_wait_for_a_retry(pipeline, urns, log)
    pipeline.close()
    own_rabbitmq.restart()
    found = callbacks(broker, callback_queue, 8, timeout_seconds=120)
    assert sorted(f["outcome"]["task_urn"] for f in found) == sorted(urns)
    assert {f["outcome"]["status"] for f in found} == {"SUCCEEDED"}
    assert callbacks(broker, callback_queue, None, timeout_seconds=3) == []
    for _, process, _ in rabbit_workers._started:
        assert process.poll() is None, "the worker exited with the broker"
