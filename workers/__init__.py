"""The Celery app: ``celery -A workers worker`` starts a jobops worker."""

from __future__ import annotations

import sys

from celery import Celery

from jobops.core.errors import ConfigurationError
from settings import get_settings
from workers.broker import KeepUndecodable, RestoreHeld
from workers.config import celery_config

try:
    _settings = get_settings()
except ConfigurationError as error:
    # Before Celery wraps it in "Unable to load celery application" and a traceback;
    # SystemExit is no Exception, so Celery's loader lets it through.
    print(f"jobops: {error}", file=sys.stderr)
    raise SystemExit(2) from None

# kombu's Redis transport, made to outlive its broker (see workers.broker).
app = Celery("jobops", amqp="workers.broker:AMQP")
app.conf.update(celery_config(_settings))
app.steps["consumer"].update({RestoreHeld, KeepUndecodable})
app.conf.include = ["tasks.verification", "tasks.scheduling", "tasks.release", "workers.sweeper",
                    "workers.flusher", "workers.checks"]

from workers import logs as _logs  # noqa: E402,F401 - connects the log format signals

__all__ = ["app"]
