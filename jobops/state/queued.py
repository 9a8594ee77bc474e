"""Which task ids the Redis broker still holds a message for, read as kombu lays it out."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Mapping, Set
from datetime import datetime
from typing import Any

import redis
from kombu.transport.redis import Channel

#: Messages read per round trip: a backlog of 100,000 costs 100 of them, without one
#: reply holding the whole queue.
PAGE_SIZE = 1_000


class BrokerMessages:
    """Reads the broker's messages in place, taking none.

    kombu's Redis transport keeps a queue's waiting messages in a list named after the
    queue (one list per priority step: ``<queue>``, ``<queue>\\x06\\x163``, …) and a
    message it delivered to a worker — running, or held in memory as a countdown task — in
    the ``unacked`` hash (delivery tag → ``[message, exchange, routing key]``) until it is
    acknowledged or handed back to its list. A message in neither place is gone (or, for a
    moment, moving between them: kombu pops it from the list and records it in the hash in
    two steps, which is also how a dying worker loses one).

    Usage::

        held = BrokerMessages(broker_redis, transport_options).find(task_ids, ["jobops"])
    """

    def __init__(self, store: redis.Redis, transport_options: Mapping[str, Any] | None = None,
                 page_size: int = PAGE_SIZE) -> None:
        options = transport_options or {}
        self._store = store
        self._page_size = page_size
        self._prefix = str(options.get("global_keyprefix", Channel.global_keyprefix))
        self._sep = str(options.get("sep", Channel.sep))
        self._priority_steps = [int(step) for step in
                                options.get("priority_steps", Channel.priority_steps)]
        self._unacked = self._prefix + str(options.get("unacked_key", Channel.unacked_key))

    def find(self, task_ids: Set[str], queues: Iterable[str]) -> set[str]:
        """Those of ``task_ids`` with a message waiting in one of ``queues`` or held,
        unacknowledged, by a worker.

        One pass over each list and the hash, however many ids are asked about. Lists
        first: a message popped meanwhile is in the hash by the time it is read.
        """
        if not task_ids:
            return set()
        found = {i for i in self._queued_ids(queues) if i in task_ids}
        found.update(i for i in self._held_ids() if i in task_ids)
        return found

    def _queued_ids(self, queues: Iterable[str]) -> Iterator[str]:
        for queue in sorted(set(queues)):
            for step in sorted(set(self._priority_steps)):
                # Step 0 is the bare queue name (kombu's _q_for_pri).
                name = f"{self._prefix}{queue}" + (f"{self._sep}{step}" if step else "")
                # From the newest end: kombu pushes there and pops at the other, so a page
                # boundary can show a message twice but never skip one.
                start = 0
                while True:
                    page = self._store.lrange(name, start, start + self._page_size - 1)
                    for raw in page:
                        task_id = _task_id(_decoded(raw))
                        if task_id is not None:
                            yield task_id
                    if len(page) < self._page_size:
                        break
                    start += self._page_size

    def next_kwargs(self, queue: str, task_name: str, count: int, due_by: float
                    ) -> list[dict[str, Any]]:
        """The keyword arguments of the next ``count`` messages a worker will take from
        ``queue`` (its unprioritised list), for ``task_name`` and due by ``due_by``
        (epoch seconds): what runs soon, read without taking it."""
        if count <= 0:
            return []
        # kombu pushes at the head and pops at the tail: the tail is what runs next.
        raw = self._store.lrange(f"{self._prefix}{queue}", -count, -1)
        found = []
        for message in reversed(raw):
            kwargs = _task_kwargs(_decoded(message), task_name, due_by)
            if kwargs is not None:
                found.append(kwargs)
        return found

    def _held_ids(self) -> Iterator[str]:
        for _, raw in self._store.hscan_iter(self._unacked, count=self._page_size):
            held = _decoded(raw)
            if isinstance(held, list) and held:
                task_id = _task_id(held[0])
                if task_id is not None:
                    yield task_id


def _decoded(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None  # not a kombu message: nothing of ours


def _task_id(payload: Any) -> str | None:
    """The task id of a kombu message (Celery's protocol 2 header, else the correlation
    id every Celery message carries)."""
    if not isinstance(payload, dict):
        return None
    headers = payload.get("headers")
    if isinstance(headers, dict) and isinstance(headers.get("id"), str):
        return str(headers["id"])
    properties = payload.get("properties")
    if isinstance(properties, dict) and isinstance(properties.get("correlation_id"), str):
        return str(properties["correlation_id"])
    return None


def _task_kwargs(payload: Any, task_name: str, due_by: float) -> dict[str, Any] | None:
    """A Celery (protocol 2) message's kwargs if it runs ``task_name`` by ``due_by``."""
    if not isinstance(payload, dict):
        return None
    headers = payload.get("headers")
    if not isinstance(headers, dict) or headers.get("task") != task_name:
        return None
    eta = headers.get("eta")
    if isinstance(eta, str):
        try:
            if datetime.fromisoformat(eta).timestamp() > due_by:
                return None
        except ValueError:
            return None
    body = payload.get("body")
    if not isinstance(body, str):
        return None
    try:
        properties = payload.get("properties")
        encoded = isinstance(properties, dict) and properties.get("body_encoding") == "base64"
        decoded = json.loads(base64.b64decode(body) if encoded else body)
    except ValueError:
        return None
    if isinstance(decoded, list) and len(decoded) >= 2 and isinstance(decoded[1], dict):
        return decoded[1]
    return None
