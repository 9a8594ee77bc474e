"""Pipelines that carry Lua scripts, without redis-py's round trip per execute.

redis-py asks Redis ``SCRIPT EXISTS`` before every pipeline that holds a registered
script, which adds a round trip to a run's closing pipeline. Scripts queued here go as
EVAL with their text instead: Redis keeps the compiled script by its digest, so that
costs a few hundred bytes on the wire, and no NOSCRIPT error (after a Redis restart) can
leave half of a pipeline applied.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis.client import Pipeline
from redis.commands.core import Script


def queue(pipe: Pipeline, script: Script, keys: Sequence[str], args: Sequence[Any]) -> None:
    text = script.script
    pipe.eval(text if isinstance(text, str) else bytes(text).decode(), len(keys), *keys, *args)


@contextmanager
def joined(store: redis.Redis, pipe: Pipeline | None) -> Iterator[Pipeline]:
    """``pipe`` if given (its owner executes it), else a pipeline executed on exit."""
    if pipe is not None:
        yield pipe
        return
    with store.pipeline(transaction=False) as own:
        yield own
        own.execute()
