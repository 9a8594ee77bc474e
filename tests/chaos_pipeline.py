"""The chaos run's callback consumer: records each outcome once per callback task id."""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from celery import Task
from celery.exceptions import Reject

from jobops.dev.pipeline import app, settings
from tests.chaos.keys import COPIES_KEY, DROPPED_KEY, OUTCOMES_KEY, SEEN_PREFIX

# The de-duplication the README advises a consumer to do: the same outcome always comes
# with the same task id; a second copy is counted and dropped. One script, so a copy is
# counted and recorded together or not at all.
_RECORD_ONCE = """
redis.call('INCR', KEYS[4])
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', 86400) then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return 1
end
redis.call('INCR', KEYS[3])
return 0
"""
_store = redis.Redis.from_url(settings.redis_url)
_record_once = _store.register_script(_RECORD_ONCE)


@app.task(bind=True, name="chaos.record", acks_late=True, reject_on_worker_lost=True)
def record(self: Task, outcome: dict[str, Any]) -> None:
    # Stamped here rather than by the runner's polling, so the recovery time is exact.
    entry = json.dumps({"outcome": outcome, "recorded_at": time.time()})
    try:
        _record_once(keys=[SEEN_PREFIX + self.request.id, OUTCOMES_KEY, DROPPED_KEY,
                           COPIES_KEY], args=[entry])
    except redis.RedisError as error:
        # Redis is restarting: hand the message back rather than fail (and lose) it.
        raise Reject(str(error), requeue=True) from None
