"""The benchmark's pipeline, sending verifications as another codebase would.

A bare Celery app (it never imports jobops) sends each operation's verification by name,
at a steady rate or as fast as it can, the way each implementation expects it:

    jobops           jobops.verify_job_operation with a countdown (the README's snippet)
    jobops_batch     the same, with a BATCH callback
    jobops_schedule  jobops.schedule_verification with the POST answer (the README's chain)
    card             card.verify_job_operation, one per operation
    naive            naive.verify, one per URN
    floor            floor.verify_job_operation, jobops' keyword arguments

    python -m bench.sender PLAN.json OUT.json

PLAN: {"implementation", "rate" (operations per second, 0 for as fast as it can),
"countdown_seconds", "in_progress_seconds", "operations": [{"urns": [...], "slow": [...]}]}.
OUT: {"started", "finished", "sent_at": [epoch seconds per operation]}. Counts URNs sent
in ``bench:sent`` as it goes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from celery import Celery

SENT = "bench:sent"
CONTEXT = {"partner": "bench"}


def senders(app: Celery, queue: str, countdown: float, in_progress_seconds: float
            ) -> dict[str, Any]:
    def jobops(urns: list[str], _: list[str], callbacks: dict[str, str] | None = None
               ) -> None:
        app.send_task("jobops.verify_job_operation", queue=queue, countdown=countdown,
                      kwargs={"task_urns": urns, "operation": "CREATE",
                              "callbacks": callbacks or {"DEFAULT": "bench.record"},
                              "context": CONTEXT,
                              "requested_at": datetime.now(UTC).isoformat()})

    def schedule(urns: list[str], _: list[str]) -> None:
        answer = {"elements": [{"id": urn, "status": 201} for urn in urns]}
        app.send_task("jobops.schedule_verification", args=(answer,), queue=queue,
                      kwargs={"operation": "CREATE", "callbacks": {"DEFAULT": "bench.record"},
                              "context": CONTEXT, "countdown_seconds": countdown})

    def card(urns: list[str], _: list[str]) -> None:
        app.send_task("card.verify_job_operation", queue=queue, countdown=countdown,
                      args=(urns, "CREATE", "bench.record", CONTEXT))

    def naive(urns: list[str], _: list[str]) -> None:
        for urn in urns:
            app.send_task("naive.verify", queue=queue, countdown=countdown,
                          args=(urn, "CREATE", "bench.record", CONTEXT))

    def floor(urns: list[str], slow: list[str]) -> None:
        app.send_task("floor.verify_job_operation", queue=queue, countdown=countdown,
                      kwargs={"task_urns": urns, "operation": "CREATE",
                              "callbacks": {"DEFAULT": "bench.record"}, "context": CONTEXT,
                              "in_progress": slow,
                              "in_progress_seconds": in_progress_seconds})

    return {"jobops": jobops, "jobops_schedule": schedule, "card": card, "naive": naive,
            "floor": floor,
            "jobops_batch": lambda urns, slow: jobops(urns, slow,
                                                      {"BATCH": "bench.record_batch"})}


def main(argv: list[str]) -> int:
    plan = json.loads(Path(argv[0]).read_text())
    broker = os.environ["REDIS_URL"]
    app = Celery("pipeline", broker=broker)
    app.conf.update(task_serializer="json", accept_content=["json"])
    store = redis.Redis.from_url(broker)
    send = senders(app, os.environ["JOBOPS_QUEUE"], plan["countdown_seconds"],
                   plan["in_progress_seconds"])[plan["implementation"]]
    rate = float(plan["rate"])
    sent_at: list[float] = []
    started = time.time()
    for index, operation in enumerate(plan["operations"]):
        if rate:
            time.sleep(max(0.0, started + index / rate - time.time()))
        sent_at.append(time.time())
        send(operation["urns"], operation["slow"])
        store.incrby(SENT, len(operation["urns"]))
    Path(argv[1]).write_text(json.dumps({"started": started, "finished": time.time(),
                                         "sent_at": sent_at}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
