"""The Celery app: ``celery -A workers worker`` starts a jobops worker."""

from __future__ import annotations

from celery import Celery

from settings import get_settings
from workers.broker import KeepUndecodable, RestoreHeld
from workers.config import celery_config

# kombu's Redis transport, made to outlive its broker (see workers.broker).
app = Celery("jobops", amqp="workers.broker:AMQP")
app.conf.update(celery_config(get_settings()))
app.steps["consumer"].update({RestoreHeld, KeepUndecodable})
app.conf.include = ["tasks.verification", "tasks.scheduling", "workers.sweeper",
                    "workers.flusher", "workers.checks"]

from workers import logs as _logs  # noqa: E402,F401 - connects the log format signals

__all__ = ["app"]
