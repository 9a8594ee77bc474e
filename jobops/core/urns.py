"""Task URNs: what a valid one looks like, and how many fit in one status query."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import quote

TASK_URN_PREFIX = "urn:li:simpleJobPostingTask:"
# LinkedIn's ids are UUID-like; the seed's own sample has a 7-digit first group, so
# accept any id of letters, digits and dashes rather than a strict UUID.
_TASK_URN = re.compile(r"urn:li:simpleJobPostingTask:[0-9A-Za-z][0-9A-Za-z_-]{0,99}")
MAX_TASK_URN_CHARS = len(TASK_URN_PREFIX) + 100
#: A well-formed task URN no operation returns: a call about it alone shows whether
#: LinkedIn accepts the request's form, whatever it says about the URN.
CANARY_URN = TASK_URN_PREFIX + "00000000-0000-0000-0000-000000000000"


def is_task_urn(value: object) -> bool:
    """True when ``value`` is a well-formed simpleJobPostingTask URN."""
    return isinstance(value, str) and _TASK_URN.fullmatch(value) is not None


def describe_invalid(value: object) -> str:
    """Why ``value`` is not a task URN, in words a user can act on."""
    if not isinstance(value, str):
        return f"{type(value).__name__} {value!r:.60} is not a string"
    if not value.startswith(TASK_URN_PREFIX):
        return f"{value!r:.80} does not start with {TASK_URN_PREFIX!r}"
    if len(value) > MAX_TASK_URN_CHARS:
        return f"{value[:60]!r}… is {len(value)} characters, more than {MAX_TASK_URN_CHARS}"
    return f"{value!r:.80} has characters other than letters, digits, '-' and '_' after the prefix"


def encode_id_param(urn: str) -> str:
    """The ``ids=…`` pair for one URN, as it appears in the query string: percent-encoded
    (Rest.li's form, accepted everywhere)."""
    return "ids=" + quote(urn, safe="")


def query_string(urns: Iterable[str]) -> str:
    """The exact query string of a status call for ``urns``."""
    return "&".join(encode_id_param(urn) for urn in urns)


def split_for_query(urns: Sequence[str], max_query_bytes: int = 4096) -> list[list[str]]:
    """Split ``urns`` into as few groups as possible, each one query within the limit.

    LinkedIn rejects a status query whose query string is longer than 4 KB; each query
    string is measured exactly as it goes on the wire, so the split never produces a 414.
    First-fit decreasing: with URNs of equal length (LinkedIn's are) this meets the
    lower bound ``ceil(n / per_call)``; with mixed lengths it stays within one call of it.
    Order inside the result is not meaningful.
    """
    unique = list(dict.fromkeys(urns))
    sized = sorted(((len(encode_id_param(u)), u) for u in unique), key=lambda p: -p[0])
    if not sized:
        return []
    smallest = sized[-1][0]
    groups: list[list[str]] = []
    used: list[int] = []
    open_groups: list[int] = []  # groups that can still take the smallest URN
    for size, urn in sized:
        if size > max_query_bytes:
            raise ValueError(f"{urn[:60]!r}… alone is longer than {max_query_bytes} bytes")
        for position, index in enumerate(open_groups):
            # Every pair after the first costs one more byte for its '&'.
            if used[index] + 1 + size <= max_query_bytes:
                groups[index].append(urn)
                used[index] += 1 + size
                if used[index] + 1 + smallest > max_query_bytes:
                    del open_groups[position]
                break
        else:
            groups.append([urn])
            used.append(size)
            open_groups.append(len(groups) - 1)
    return groups
