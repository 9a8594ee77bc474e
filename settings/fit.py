"""Settings that must fit together, and the defaults that give way to what the user set."""

from __future__ import annotations

from collections.abc import Mapping, Set

__all__ = ["FITTED", "fit"]

#: The fields this module may move, by field name.
FITTED = ("first_check_seconds", "poll_interval_seconds", "max_poll_interval_seconds",
          "visibility_timeout_seconds", "http_timeout_seconds", "token_lock_seconds",
          "daily_call_limit", "quota_reserve")
#: A token refresh's HTTP call may take three quarters of its lock (the defaults: 30 of 40 s).
HTTP_TIMEOUT_PER_LOCK = 0.75
#: The reserve a lowered daily limit keeps back at most.
RESERVE_SHARE = 10


class _Values:
    """The fitted values, what the user set, and how to name them in an error."""

    def __init__(self, values: Mapping[str, float], given: Set[str],
                 env_names: Mapping[str, str]) -> None:
        self.values, self.given, self.env_names = dict(values), given, env_names

    def __getitem__(self, field: str) -> float:
        return self.values[field]

    def default(self, field: str) -> bool:
        return field not in self.given

    def follow(self, field: str, value: float) -> None:
        """Move a default; a value the user set is never moved."""
        if self.default(field):
            self.values[field] = value

    def shown(self, field: str) -> str:
        value = self.values[field]
        text = str(int(value)) if float(value).is_integer() else f"{value:g}"
        return f"{self.env_names[field]}={text}" + (" (default)" if self.default(field) else "")


def _poll_timing(v: _Values) -> None:
    """A countdown must stay under half of the visibility timeout (or Redis runs the task
    twice), and the first poll step under the cap."""
    if not v.default("visibility_timeout_seconds"):
        half = v["visibility_timeout_seconds"] / 2
        v.follow("first_check_seconds", min(v["first_check_seconds"], half))
        v.follow("max_poll_interval_seconds", min(v["max_poll_interval_seconds"], half))
    if not v.default("poll_interval_seconds"):
        v.follow("max_poll_interval_seconds",
                 max(v["max_poll_interval_seconds"], v["poll_interval_seconds"]))
    v.follow("poll_interval_seconds",
             min(v["poll_interval_seconds"], v["max_poll_interval_seconds"]))
    v.follow("visibility_timeout_seconds",
             max(v["visibility_timeout_seconds"], 2 * v["first_check_seconds"],
                 2 * v["max_poll_interval_seconds"]))

    if v["poll_interval_seconds"] > v["max_poll_interval_seconds"]:
        raise ValueError(f"{v.shown('poll_interval_seconds')} exceeds "
                         f"{v.shown('max_poll_interval_seconds')}: the first poll step "
                         "cannot be longer than the cap; lower the first or raise the second")
    half = v["visibility_timeout_seconds"] / 2
    for field in ("first_check_seconds", "max_poll_interval_seconds"):
        if v[field] > half:
            # A cap nobody set is only there because it followed the poll interval up.
            culprit = field if not v.default(field) else "poll_interval_seconds"
            raise ValueError(
                f"{v.shown(culprit)} is more than half of "
                f"{v.shown('visibility_timeout_seconds')}: Redis would deliver the waiting "
                "task a second time; lower the first or raise the visibility timeout")


def _token_lock(v: _Values) -> None:
    """A token refresh's lock must outlive its HTTP call."""
    if v["token_lock_seconds"] > v["http_timeout_seconds"]:
        return
    v.follow("token_lock_seconds", v["http_timeout_seconds"] / HTTP_TIMEOUT_PER_LOCK)
    v.follow("http_timeout_seconds", v["token_lock_seconds"] * HTTP_TIMEOUT_PER_LOCK)
    if v["token_lock_seconds"] <= v["http_timeout_seconds"]:
        raise ValueError(
            f"{v.shown('token_lock_seconds')} must be longer than "
            f"{v.shown('http_timeout_seconds')}, or a slow token request loses its lock to "
            "a second refresher; raise the lock or lower the timeout")


def _quota_reserve(v: _Values) -> None:
    """The quota reserve must leave some of the daily limit. The daily limit never follows
    the reserve: it is LinkedIn's, not a default to raise."""
    v.follow("quota_reserve", min(v["quota_reserve"], v["daily_call_limit"] // RESERVE_SHARE))
    if v["quota_reserve"] >= v["daily_call_limit"]:
        raise ValueError(f"{v.shown('quota_reserve')} leaves nothing of "
                         f"{v.shown('daily_call_limit')}; lower the reserve")


def fit(values: Mapping[str, float], given: Set[str], env_names: Mapping[str, str]
        ) -> dict[str, float]:
    """The defaults among ``values`` moved to fit what was ``given``; ValueError naming
    both variables if two given values conflict.

    When the user sets one side and not the other, the default on the other side follows
    instead of stopping the worker:

        JOBOPS_POLL_INTERVAL_SECONDS       60, at most the cap
        JOBOPS_MAX_POLL_INTERVAL_SECONDS   1800, at most half the visibility timeout set,
                                           at least the poll interval set
        JOBOPS_FIRST_CHECK_SECONDS         300, at most half the visibility timeout set
        JOBOPS_VISIBILITY_TIMEOUT_SECONDS  7200, at least twice the first check and the cap
        JOBOPS_TOKEN_LOCK_SECONDS          40, or 4/3 of a longer HTTP timeout
        JOBOPS_HTTP_TIMEOUT_SECONDS        30, or 3/4 of a shorter token lock
        JOBOPS_QUOTA_RESERVE               1000, at most a tenth of the daily limit

    Only values the user set can conflict; the error names both and how to fix them.
    """
    v = _Values(values, given, env_names)
    _poll_timing(v)
    _token_lock(v)
    _quota_reserve(v)
    return {field: value for field, value in v.values.items() if value != values[field]}
