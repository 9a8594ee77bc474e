"""Scripts queued in pipelines run even when Redis has not loaded them (e.g. a restart)."""

from __future__ import annotations

import uuid

import pytest
import redis

from jobops.state import lua

pytestmark = pytest.mark.integration


def test_a_pipeline_with_a_script_redis_has_not_seen_runs_it_once(store: redis.Redis
                                                                  ) -> None:
    # A fresh text: its digest is in no script cache, as after a Redis restart.
    script = store.register_script(f"-- {uuid.uuid4()}\n"
                                   "return redis.call('INCR', KEYS[1])")
    with store.pipeline(transaction=False) as pipe:
        pipe.set("test:scripts:plain", "1")
        lua.queue(pipe, script, ["test:scripts:counter"], [])
        results = pipe.execute()
    assert results[-1] == 1
    assert store.get("test:scripts:counter") == b"1"
    assert store.script_exists(script.sha) == [True]
