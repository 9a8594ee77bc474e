"""Lua scripts queued in pipelines, without redis-py's round trip per execute.

redis-py asks Redis ``SCRIPT EXISTS`` before every pipeline that holds a script, which
doubles the round trips of a run's closing pipeline. Scripts registered here are queued
as plain EVALSHA; only if Redis lost its script cache (a restart) is the pipeline run
again after loading them. Every command queued in such a pipeline must be idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.client import Pipeline
from redis.commands.core import Script
from redis.exceptions import NoScriptError

_known: dict[str, str] = {}


def register(store: redis.Redis, text: str) -> Script:
    script = store.register_script(text)
    _known[script.sha] = text
    return script


def queue(pipe: Pipeline, script: Script, keys: Sequence[str], args: Sequence[Any]) -> None:
    pipe.evalsha(script.sha, len(keys), *keys, *args)


def execute(pipe: Pipeline) -> list[Any]:
    """``pipe.execute()``, loading the scripts and running it again if Redis lacked them."""
    queued = list(pipe.command_stack)
    try:
        return pipe.execute()
    except NoScriptError:
        for text in _known.values():
            pipe.immediate_execute_command("SCRIPT", "LOAD", text)
        pipe.command_stack = queued
        return pipe.execute()
