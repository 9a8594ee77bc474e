"""The one settings object, read from the environment once and validated loudly.

Every environment variable the service reads is declared here; nothing else calls
``os.getenv``. ``get_settings()`` returns the same frozen object for the life of the
process. Bad values raise :class:`jobops.core.errors.ConfigurationError` naming the variable,
what was wrong, and what would be accepted.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobops.core.cadence import Cadence
from jobops.core.errors import ConfigurationError
from jobops.core.request import MAX_BATCH_SECONDS, MAX_BATCH_SIZE
from settings.fit import FITTED, fit
from settings.urls import masked, plain_http_elsewhere

__all__ = ["Settings", "get_settings", "load_settings"]


class Settings(BaseSettings):
    """Everything jobops can be told, with the environment variable that tells it."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    redis_url: str = Field("redis://localhost:6379/0", alias="REDIS_URL")
    broker_url: str | None = Field(None, alias="CELERY_BROKER_URL")
    # With Sentinel addresses (sentinel://host:26379;sentinel://…) in REDIS_URL or
    # CELERY_BROKER_URL: the name the sentinels monitor the primary under.
    redis_master_name: str = Field("jobops", alias="JOBOPS_REDIS_MASTER_NAME", min_length=1)

    linkedin_api_url: str = Field("https://api.linkedin.com", alias="LINKEDIN_API_URL")
    linkedin_token_url: str = Field(
        "https://www.linkedin.com/oauth/v2/accessToken", alias="LINKEDIN_TOKEN_URL"
    )
    linkedin_client_id: str = Field("", alias="LINKEDIN_CLIENT_ID")
    linkedin_client_secret: SecretStr = Field(SecretStr(""), alias="LINKEDIN_CLIENT_SECRET")
    # Plain http:// to LinkedIn's URLs is refused unless they are on this machine: the client
    # secret and bearer tokens would cross the network unencrypted.
    allow_plain_http: bool = Field(False, alias="JOBOPS_ALLOW_PLAIN_HTTP")

    queue: str = Field("jobops", alias="JOBOPS_QUEUE", min_length=1)
    callback_queue: str = Field("celery", alias="JOBOPS_CALLBACK_QUEUE", min_length=1)

    first_check_seconds: float = Field(300.0, alias="JOBOPS_FIRST_CHECK_SECONDS", ge=0)
    poll_interval_seconds: float = Field(60.0, alias="JOBOPS_POLL_INTERVAL_SECONDS", gt=0)
    max_poll_interval_seconds: float = Field(
        1800.0, alias="JOBOPS_MAX_POLL_INTERVAL_SECONDS", gt=0
    )
    task_lifespan_days: float = Field(30.0, alias="JOBOPS_TASK_LIFESPAN_DAYS", gt=0)

    http_timeout_seconds: float = Field(30.0, alias="JOBOPS_HTTP_TIMEOUT_SECONDS", gt=0)
    token_refresh_margin_seconds: float = Field(
        120.0, alias="JOBOPS_TOKEN_REFRESH_MARGIN_SECONDS", ge=0
    )
    max_query_bytes: int = Field(4096, alias="JOBOPS_MAX_QUERY_BYTES", ge=256, le=4096)
    token_lock_seconds: float = Field(40.0, alias="JOBOPS_TOKEN_LOCK_SECONDS", gt=0)
    calls_per_second: int = Field(10, alias="JOBOPS_CALLS_PER_SECOND", ge=1, le=10_000)
    daily_call_limit: int = Field(300_000, alias="JOBOPS_DAILY_CALL_LIMIT", ge=1)
    quota_reserve: int = Field(1_000, alias="JOBOPS_QUOTA_RESERVE", ge=0)
    permit_max_wait_seconds: float = Field(2.0, alias="JOBOPS_PERMIT_MAX_WAIT_SECONDS", ge=0)
    # A fleet-wide pause (429, refused token, refused request) starts at about this step
    # and doubles up to the cap; one call checks at the end of each step.
    pause_first_seconds: float = Field(2.0, alias="JOBOPS_PAUSE_FIRST_SECONDS", gt=0)
    pause_max_seconds: float = Field(900.0, alias="JOBOPS_PAUSE_MAX_SECONDS", gt=0)
    allow_clock_override: bool = Field(False, alias="JOBOPS_ALLOW_CLOCK_OVERRIDE")
    # Tests only, with JOBOPS_ALLOW_CLOCK_OVERRIDE: this process's host clock reads this
    # far off, as a badly synchronised host's would.
    test_host_clock_skew_seconds: float = Field(0.0, alias="JOBOPS_TEST_HOST_CLOCK_SKEW_SECONDS")
    sweep_interval_seconds: float = Field(60.0, alias="JOBOPS_SWEEP_INTERVAL_SECONDS", gt=0)
    coalesce_polling: bool = Field(True, alias="JOBOPS_COALESCE_POLLING")
    status_fresh_seconds: float = Field(60.0, alias="JOBOPS_STATUS_FRESH_SECONDS", gt=0)
    log_format: Literal["text", "json"] = Field("text", alias="JOBOPS_LOG_FORMAT")
    # Renewed by its holder three times a lease: a dead holder's round is free this soon.
    run_lease_seconds: float = Field(12.0, alias="JOBOPS_RUN_LEASE_SECONDS", ge=1)
    visibility_timeout_seconds: float = Field(
        7200.0, alias="JOBOPS_VISIBILITY_TIMEOUT_SECONDS", ge=10
    )
    eta_task_limit: int = Field(10_000, alias="JOBOPS_ETA_TASK_LIMIT", ge=1)
    # A worker refuses a Redis whose maxmemory-policy may evict keys; this makes it a warning.
    allow_eviction: bool = Field(False, alias="JOBOPS_ALLOW_EVICTION")
    # Celery's task events cost about as much as the task itself (see bench/README.md).
    # Flower switches workers' events on while it runs; this sends them (and task-sent
    # events) from the start.
    task_events: bool = Field(False, alias="JOBOPS_TASK_EVENTS")
    # Each process adds its metric counts to Redis at most this often (and when it stops).
    metrics_flush_seconds: float = Field(1.0, alias="JOBOPS_METRICS_FLUSH_SECONDS", ge=0)
    # BATCH callbacks that do not say: outcomes per batch, and the longest a batch waits.
    batch_size: int = Field(100, alias="JOBOPS_BATCH_SIZE", ge=1, le=MAX_BATCH_SIZE)
    batch_seconds: float = Field(5.0, alias="JOBOPS_BATCH_SECONDS", gt=0,
                                 le=MAX_BATCH_SECONDS)

    @model_validator(mode="after")
    def _fit_together(self) -> Settings:
        fields = type(self).model_fields
        moved = fit({name: getattr(self, name) for name in FITTED}, self.model_fields_set,
                    {name: fields[name].alias or name for name in FITTED})
        for name, value in moved.items():
            # Frozen to everyone else; this validator is still building the object.
            object.__setattr__(self, name, value)
        return self

    @model_validator(mode="after")
    def _urls(self) -> Settings:
        for env, url in (
            ("REDIS_URL", self.redis_url),
            ("CELERY_BROKER_URL", self.broker_url or self.redis_url),
        ):
            if "://" not in url:
                raise ValueError(f"{env} must be a URL such as redis://localhost:6379/0")
        for env, url in (
            ("LINKEDIN_API_URL", self.linkedin_api_url),
            ("LINKEDIN_TOKEN_URL", self.linkedin_token_url),
        ):
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{env} must start with http:// or https://, "
                                 f"got {masked(url)!r}")
            if plain_http_elsewhere(url) and not self.allow_plain_http:
                raise ValueError(
                    f"{env}={masked(url)} would send the client secret and access tokens "
                    "unencrypted to another host; use https://, or set "
                    "JOBOPS_ALLOW_PLAIN_HTTP=1 for an emulator on a network you trust")
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # A URL may carry a password (Redis's, a proxy's); settings are shown in logs and errors.
        for name, value in super().__repr_args__():
            yield name, masked(value) if name and name.endswith("_url") and value else value

    @property
    def task_lifespan_seconds(self) -> float:
        return self.task_lifespan_days * 86_400

    @property
    def cadence(self) -> Cadence:
        return Cadence(
            first_check_seconds=self.first_check_seconds,
            poll_interval_seconds=self.poll_interval_seconds,
            max_poll_interval_seconds=self.max_poll_interval_seconds,
            lifespan_seconds=self.task_lifespan_seconds,
            status_fresh_seconds=self.status_fresh_seconds,
            visibility_timeout_seconds=self.visibility_timeout_seconds,
        )

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or self.redis_url


def _explain(error: ValidationError) -> str:
    lines = ["jobops settings are invalid:"]
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "settings"
        given = problem.get("input")
        shown = "" if where.endswith("SECRET") or isinstance(given, dict) else f" (got {given!r})"
        lines.append(f"  {where}: {problem['msg']}{shown}")
    return "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (plus ``overrides``, keyed by variable name) into Settings."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigurationError(_explain(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return load_settings()
