"""The Celery app: ``celery -A workers worker`` starts a jobops worker."""

from __future__ import annotations

from celery import Celery

from settings import celery_config, get_settings

app = Celery("jobops")
app.conf.update(celery_config(get_settings()))
app.conf.include = ["tasks.verification", "tasks.scheduling", "workers.sweeper",
                    "workers.batches", "workers.checks"]

from workers import logs as _logs  # noqa: E402,F401 - connects the log format signals

__all__ = ["app"]
