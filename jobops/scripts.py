"""Lua scripts queued in pipelines, without redis-py's round trip per execute.

redis-py asks Redis ``SCRIPT EXISTS`` before every pipeline that holds a script, which
adds a round trip to a run's closing pipeline. Scripts queued here go as EVAL with their
text instead: Redis keeps the compiled script by its digest, so that costs a few hundred
bytes on the wire, and no NOSCRIPT error (after a Redis restart) can leave half of a
pipeline applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.client import Pipeline
from redis.commands.core import Script


def register(store: redis.Redis, text: str) -> Script:
    return store.register_script(text)


def queue(pipe: Pipeline, script: Script, keys: Sequence[str], args: Sequence[Any]) -> None:
    text = script.script
    pipe.eval(text if isinstance(text, str) else bytes(text).decode(), len(keys), *keys, *args)


def execute(pipe: Pipeline) -> list[Any]:
    return pipe.execute()
