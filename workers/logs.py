"""Log lines: Celery's format by default, one JSON object per line with JOBOPS_LOG_FORMAT=json."""

from __future__ import annotations

import json
import logging
import warnings
from datetime import UTC, datetime
from typing import Any

from celery._state import get_current_task
from celery.exceptions import CPendingDeprecationWarning
from celery.signals import after_setup_logger, after_setup_task_logger, celeryd_after_setup

from settings import get_settings

# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "task_id",
                                                   "task_name"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,
            "message": record.getMessage(),
        }
        task = get_current_task()
        if task is not None and task.request.id:
            event["task_id"] = task.request.id
            event["task_name"] = task.name
        event.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str)


def _use_json(logger: logging.Logger, **_: Any) -> None:
    if get_settings().log_format != "json":
        return
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())


after_setup_logger.connect(_use_json)
after_setup_task_logger.connect(_use_json)


@celeryd_after_setup.connect
def _quiet_settled_warnings(**_: Any) -> None:
    # worker_cancel_long_running_tasks_on_connection_loss is set (workers.config.celery_config),
    # yet Celery warns about it on every lost connection. Added after Celery's own
    # logging set-up, which turns all its deprecation warnings on.
    warnings.filterwarnings("ignore", r"\s*In Celery 5\.1 we introduced an optional",
                            CPendingDeprecationWarning)
