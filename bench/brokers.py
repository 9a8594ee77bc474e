"""100,000 pending single-job verifications (first check an hour away) with RabbitMQ and with
Redis as the broker, in one run: worker memory, scheduling intake, what each Redis key
costs per pending URN, and what RabbitMQ holds for them. On RabbitMQ also the card's own
path (a pipeline sending ``verify_job_operation`` by name with a countdown, one message
through the delay exchanges each), and what RabbitMQ's CPU pays per message through the
delay exchanges against one published straight to the quorum queue.

``python -m bench.brokers [--count N]`` writes ``bench/results/brokers.json``. Each broker
gets a Redis of its own (``redis-server`` on a free port, so its memory is only this
run's) and RabbitMQ a vhost of its own (127.0.0.1:5672, guest/guest, via rabbitmqctl).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import redis

from jobops.dev.processes import start_redis, start_worker, stop, wait_ready

RESULTS = Path(__file__).parent / "results" / "brokers.json"
FIRST_CHECK_SECONDS = 3600
#: Key kinds of jobops' state and kombu's Redis broker, by pattern.
KEY_KINDS = {
    "pending_args (jobops:pending:<id>)": "jobops:pending:*-*",
    "due set (jobops:due)": "jobops:due",
    "due owners (jobops:due:owners)": "jobops:due:owners",
    "pending set (jobops:pending)": "jobops:pending",
    "held set (jobops:held)": "jobops:held",
    "release markers (jobops:release:<second>)": "jobops:release:*",
    "pending URN counts (jobops:pending:urns)": "jobops:pending:urns",
    "scheduled markers (jobops:scheduled:<id>)": "jobops:scheduled:*",
    "broker queue list": "{queue}",
    "broker unacked hash": "unacked",
    "broker unacked index": "unacked_index",
}


def pss_bytes(pid: int) -> int:
    """Proportional set size of a process and its children."""
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a child that ended meanwhile
            total += process.memory_full_info().pss
    return total


def _rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True,
                          check=True, timeout=120).stdout


def _delay_queues(vhost: str, count: int) -> tuple[int, int]:
    """Messages and bytes of memory of the delay queues, once ``count`` messages are there
    (rabbitmqctl's counts trail by seconds), or after a minute."""
    deadline = time.monotonic() + 60
    while True:
        rows = [line.split("\t") for line in _rabbitmqctl(
            "list_queues", "-p", vhost, "name", "messages", "memory").splitlines()]
        held = [(int(n), int(m)) for name, n, m in rows if name.startswith("celery_delayed")]
        messages = sum(n for n, _ in held)
        if messages >= count or time.monotonic() > deadline:
            return messages, sum(m for _, m in held)
        time.sleep(2)


def key_costs(store: redis.Redis, queue: str, count: int) -> dict[str, float]:
    """Bytes per pending URN of each key kind (MEMORY USAGE, all samples of a kind)."""
    costs = {}
    for kind, pattern in KEY_KINDS.items():
        pattern = pattern.format(queue=queue)
        names = [pattern] if "*" not in pattern else list(
            store.scan_iter(match=pattern, count=10_000))
        total = sum(store.memory_usage(name, samples=0) or 0 for name in names)
        if total:
            costs[kind] = round(total / count, 1)
    return costs


def run_one(count: int) -> dict[str, Any]:
    """One sender: ``count`` single-job operations through ``verify_urns``, in a process
    with the settings in its environment."""
    from workers.scheduling import verify_urns

    urns = [f"urn:li:simpleJobPostingTask:{uuid.uuid4()}" for _ in range(count)]
    callbacks = {"DEFAULT": "pipeline.job_outcome"}
    started = time.perf_counter()
    for urn in urns:
        verify_urns([urn], "CREATE", callbacks, countdown_seconds=FIRST_CHECK_SECONDS)
    return {"count": count, "seconds": time.perf_counter() - started}


def run_one_by_name(count: int) -> dict[str, Any]:
    """One sender of the card's path: a pipeline's own Celery app, configured as the
    README's RabbitMQ snippet says (publisher confirms included), sending
    ``verify_job_operation`` by name with a countdown, imports nothing of jobops."""
    from celery import Celery
    from kombu import Exchange, Queue

    queue = os.environ["JOBOPS_QUEUE"]
    app = Celery("pipeline", broker=os.environ["CELERY_BROKER_URL"])
    app.conf.task_queues = [Queue(queue, Exchange(queue, type="topic"), routing_key=queue,
                                  queue_arguments={"x-queue-type": "quorum"})]
    app.conf.task_routes = {"jobops.*": {"queue": queue}}
    app.conf.broker_transport_options = {"confirm_publish": True}
    urns = [f"urn:li:simpleJobPostingTask:{uuid.uuid4()}" for _ in range(count)]
    started = time.perf_counter()
    for urn in urns:
        app.send_task("jobops.verify_job_operation", countdown=FIRST_CHECK_SECONDS, kwargs={
            "task_urns": [urn], "operation": "CREATE",
            "callbacks": {"DEFAULT": "pipeline.job_outcome"}})
    return {"count": count, "seconds": time.perf_counter() - started}


def intake(env: dict[str, str], count: int, senders: int, mode: str = "--one"
           ) -> dict[str, Any]:
    """``senders`` processes scheduling ``count`` operations between them."""
    started = time.perf_counter()
    processes = [subprocess.Popen([sys.executable, "-m", "bench.brokers", mode,
                                   "--count", str(count // senders)],
                                  env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)
                 for _ in range(senders)]
    outputs = [process.communicate()[0] for process in processes]
    wall = time.perf_counter() - started
    assert all(process.returncode == 0 for process in processes), outputs
    # The senders' scheduling loops, not their imports: they run side by side, so the
    # slowest loop is the time the whole intake took.
    loops = max(json.loads(out.splitlines()[-1])["seconds"] for out in outputs)
    return {"senders": senders, "intake_seconds": round(loops, 1),
            "wall_seconds_with_process_start": round(wall, 1),
            "intake_ops_per_second": round(count // senders * senders / loops)}


def run_release() -> dict[str, Any]:
    """Release every held round due by now, in a process with the settings."""
    from workers.release import release_due
    from workers.runtime import runtime

    fleet = runtime()
    started = time.perf_counter()
    sent = release_due(fleet, fleet.clock.now())
    return {"count": sent, "seconds": time.perf_counter() - started}


def release(env: dict[str, str], vhost: str, queue: str) -> dict[str, Any]:
    """One process releasing every held round at once: how fast their messages go out."""
    done = subprocess.run([sys.executable, "-m", "bench.brokers", "--release"],
                          env={**os.environ, **env}, capture_output=True, text=True,
                          check=True)
    ran = json.loads(done.stdout.splitlines()[-1])
    deadline = time.monotonic() + 60
    while True:
        rows = [line.split("\t") for line in _rabbitmqctl(
            "list_queues", "-p", vhost, "name", "messages").splitlines()]
        queued = sum(int(n) for name, n in rows if name == queue)
        if queued >= ran["count"] or time.monotonic() > deadline:
            break
        time.sleep(2)
    return {"released": ran["count"], "seconds": round(ran["seconds"], 1),
            "rounds_per_second": round(ran["count"] / ran["seconds"]),
            "in_the_queue_after": queued}


def _beam() -> psutil.Process | None:
    """RabbitMQ's Erlang VM on this machine, if it can be found."""
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == "beam.smp":
            return process
    return None


def _broker_cpu_seconds(beam: psutil.Process) -> float:
    times = beam.cpu_times()
    return float(times.user + times.system)


def broker_cost(vhost: str, queue: str, count: int = 5_000) -> dict[str, Any]:
    """RabbitMQ's own CPU per message: ``count`` published through the delay exchanges
    with an hour's countdown (Celery's routing key), and ``count`` straight to a quorum
    queue, each a thousand in flight (pipelined confirms), so the client is not what is
    measured."""
    import amqp
    from kombu.transport.native_delayed_delivery import calculate_routing_key

    beam = _beam()
    if beam is None:
        return {"skipped": "no beam.smp process found"}
    body = json.dumps([[], {"task_urns": [f"urn:li:simpleJobPostingTask:{uuid.uuid4()}"],
                            "operation": "CREATE"}, {}]).encode()
    # A quorum queue of its own, no consumer: the worker must not take these.
    straight = f"{queue}-straight"
    ways = {"through the delay exchanges": ("celery_delayed_27",
                                            calculate_routing_key(FIRST_CHECK_SECONDS, queue)),
            "straight to a quorum queue": ("", straight)}
    results: dict[str, Any] = {"messages": count}
    connection = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest",
                                 virtual_host=vhost)
    connection.connect()
    try:
        channel = connection.channel()
        channel.queue_declare(straight, durable=True, auto_delete=False,
                              arguments={"x-queue-type": "quorum"})
        channel.confirm_select()
        acked = [0]
        channel.events["basic_ack"].add(
            lambda tag, multiple: acked.__setitem__(0, max(acked[0], tag)))
        published = 0
        for way, (exchange, routing_key) in ways.items():
            cpu, started = _broker_cpu_seconds(beam), time.perf_counter()
            for _ in range(count):
                channel.basic_publish(amqp.Message(body, delivery_mode=2),
                                      exchange=exchange, routing_key=routing_key)
                published += 1
                while published - acked[0] >= 1_000:
                    connection.drain_events(timeout=30)
            while acked[0] < published:
                connection.drain_events(timeout=30)
            seconds = time.perf_counter() - started
            results[way] = {
                "broker_cpu_ms_per_message": round(
                    (_broker_cpu_seconds(beam) - cpu) / count * 1000, 3),
                "messages_per_second": round(count / seconds)}
        channel.queue_delete(straight)
    finally:
        connection.close()
    return results


def measure(broker: str, count: int, senders: int, workdir: Path) -> dict[str, Any]:
    redis_process, redis_url = start_redis(workdir)
    vhost = None
    queue = f"jobops-bench-{uuid.uuid4().hex[:6]}"
    env = {"REDIS_URL": redis_url, "JOBOPS_QUEUE": queue,
           "JOBOPS_CALLBACK_QUEUE": f"pipeline-bench-{queue[-6:]}",
           "LINKEDIN_API_URL": "http://127.0.0.1:9", "LINKEDIN_TOKEN_URL":
           "http://127.0.0.1:9/oauth/v2/accessToken", "LINKEDIN_CLIENT_ID": "bench",
           "LINKEDIN_CLIENT_SECRET": "bench"}
    if broker == "rabbitmq":
        vhost = f"jobops-bench-{uuid.uuid4().hex[:6]}"
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        env["CELERY_BROKER_URL"] = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    worker = start_worker("workers", queue, env, workdir / f"worker-{broker}.log",
                          concurrency=2)
    try:
        wait_ready(worker, workdir / f"worker-{broker}.log")
        time.sleep(5)
        idle = pss_bytes(worker.pid)
        store = redis.Redis.from_url(redis_url)
        before = int(store.info("memory")["used_memory"])
        result: dict[str, Any] = {"broker": broker, "count": count, "queue": queue,
                                  **intake(env, count, senders)}
        # The worker takes in what it will (on Redis: countdown messages up to the ETA
        # limit, held in memory); sampled until it settles.
        peak, settled_at = idle, time.monotonic()
        while time.monotonic() - settled_at < 10:
            now = pss_bytes(worker.pid)
            if now > peak * 1.01:
                peak, settled_at = now, time.monotonic()
            time.sleep(1)
        used = int(store.info("memory")["used_memory"]) - before
        result.update({
            "worker_pss_idle_mb": round(idle / 2**20, 1),
            "worker_pss_after_mb": round(peak / 2**20, 1),
            "worker_pss_growth": round(peak / idle - 1, 3),
            "redis_bytes_per_pending_urn": round(used / count),
            "redis_key_bytes_per_urn": key_costs(store, queue, count),
        })
        if vhost is not None:
            releases = sum(1 for _ in store.scan_iter(match="jobops:release:*"))
            messages, memory = _delay_queues(vhost, releases)
            result.update({
                "held_in_redis": store.zcard("jobops:held"),
                "rabbitmq_release_messages_waiting": messages,
                "rabbitmq_delay_queue_bytes": memory,
                "rabbitmq_bytes_per_pending_operation": round(memory / count, 1)})
            # The card's own path beside it, in the same vhost and worker: fewer messages,
            # as each is one through the delay exchanges.
            by_name = intake(env, count // 5, senders, "--one-by-name")
            waiting, memory = _delay_queues(vhost, messages + count // 5)
            result["by_name_with_countdown"] = {
                "count": count // 5, **by_name,
                "rabbitmq_messages_waiting": waiting - messages,
                "rabbitmq_bytes_per_waiting_message":
                    round(memory / max(waiting, 1))}
            result["broker_cost"] = broker_cost(vhost, queue)
            # The other half: every held round made due at once and released, with no
            # worker consuming, so the queue counts what was sent.
            stop(worker)
            store.zunionstore("jobops:held", {"jobops:held": 0})
            result["release"] = release(env, vhost, queue)
        return result
    finally:
        stop(worker)
        stop(redis_process)
        if vhost is not None:
            _rabbitmqctl("delete_vhost", vhost)


def targets(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rabbit, on_redis = runs["rabbitmq"], runs["redis"]
    return [
        {"target": "worker PSS within 20% of idle on RabbitMQ",
         "figure": rabbit["worker_pss_growth"], "met": rabbit["worker_pss_growth"] <= 0.2},
        {"target": "scheduling intake >= 1,000 operations/s",
         "figure": {**{b: r["intake_ops_per_second"] for b, r in runs.items()},
                    "rabbitmq, by name with a countdown":
                        rabbit["by_name_with_countdown"]["intake_ops_per_second"]},
         "met": rabbit["intake_ops_per_second"] >= 1000},
        {"target": "jobops' own Redis state <= 1 KB per pending URN (RabbitMQ broker)",
         "figure": rabbit["redis_bytes_per_pending_urn"],
         "met": rabbit["redis_bytes_per_pending_urn"] <= 1024},
        {"target": "(Redis broker, for comparison) Redis bytes per pending URN",
         "figure": on_redis["redis_bytes_per_pending_urn"], "met": None},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--senders", type=int, default=4,
                        help="processes scheduling at once (each waits on the broker)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--one-by-name", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--release", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.release:
        print(json.dumps(run_release()))
        return
    if args.one or args.one_by_name:
        print(json.dumps((run_one_by_name if args.one_by_name else run_one)(args.count)))
        return
    workdir = Path(tempfile.mkdtemp(prefix="jobops-brokers-"))
    runs = {broker: measure(broker, args.count, args.senders, workdir)
            for broker in ("rabbitmq", "redis")}
    report = {"runs": runs, "targets": targets(runs),
              "machine": {"cpus": os.cpu_count()}, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                      time.gmtime())}
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
