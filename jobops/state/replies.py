"""Redis replies as text: redis-py hands back bytes unless told otherwise."""

from __future__ import annotations

from typing import Any


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def text_or_none(value: Any) -> str | None:
    return None if value is None else text(value)
