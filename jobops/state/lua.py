"""The Lua scripts in ``jobops/state/scripts``, by name, and pipelines that carry them.

A script's header states its KEYS and ARGV; a ``-- uses: a, b`` line in it puts the
preludes ``scripts/prelude/a.lua`` and ``b.lua`` before its body (one clock, one sealing
function, each written once).


redis-py asks Redis ``SCRIPT EXISTS`` before every pipeline that holds a registered
script, which adds a round trip to a run's closing pipeline. Scripts queued here go as
EVAL with their text instead: Redis keeps the compiled script by its digest, so that
costs a few hundred bytes on the wire, and no NOSCRIPT error (after a Redis restart) can
leave half of a pipeline applied.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import redis
from redis.client import Pipeline
from redis.commands.core import Script

_SCRIPTS = Path(__file__).with_name("scripts")
_USES = "-- uses:"


@cache
def source(name: str) -> str:
    """The text of ``scripts/<name>.lua``, its preludes first."""
    text = (_SCRIPTS / f"{name}.lua").read_text()
    preludes = [part.strip() for line in text.splitlines() if line.startswith(_USES)
                for part in line.removeprefix(_USES).split(",")]
    return "".join((_SCRIPTS / "prelude" / f"{part}.lua").read_text() + "\n"
                   for part in preludes) + text


def register(store: redis.Redis, name: str) -> Script:
    return store.register_script(source(name))


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
