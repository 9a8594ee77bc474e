"""The sweeper's search of the broker: every page of every priority list, and the
messages workers hold. A real Redis."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import redis

from jobops.state.queued import BrokerMessages
from workers import app

pytestmark = pytest.mark.integration


@pytest.fixture
def queue(store: redis.Redis) -> Iterator[str]:
    name = f"test-broker-{uuid.uuid4().hex[:8]}"
    yield name
    for key in store.scan_iter(match=f"{name}*"):
        store.delete(key)


def publish(queue: str, priority: int | None = None) -> str:
    task_id = str(uuid.uuid4())
    app.send_task("jobops.verify_job_operation", kwargs={"task_urns": [], "operation": "CREATE"},
                  queue=queue, task_id=task_id, countdown=60, priority=priority)
    return task_id


def test_find_reads_every_page_of_every_priority_list_and_the_unacked_hash(
        store: redis.Redis, queue: str) -> None:
    waiting = [publish(queue) for _ in range(5)]
    urgent = publish(queue, priority=9)
    assert store.llen(f"{queue}\x06\x169") == 1  # kombu's list for priority 9
    # Delivered and held by a worker, as kombu records it: gone from the list.
    held = publish(queue)
    tag = f"test-{uuid.uuid4()}"
    raw = store.lpop(queue)
    assert raw is not None and json.loads(raw)["headers"]["id"] == held
    store.hset("unacked", tag, json.dumps([json.loads(raw), "", queue]))
    gone = str(uuid.uuid4())
    store.lpush(queue, b"not a kombu message")
    try:
        messages = BrokerMessages(store, page_size=2)
        asked = {*waiting, urgent, held, gone}
        assert messages.find(asked, [queue, "test-broker-none"]) == {*waiting, urgent, held}
        assert messages.find(asked, []) == {held}
        assert messages.find(set(), [queue]) == set()
    finally:
        store.hdel("unacked", tag)
