"""The Celery delivery settings every baseline shares with jobops' own app.

Prefetch, acknowledgement, the ETA limit, the visibility timeout and the serializer decide
how much a worker holds and how often it talks to the broker; a baseline configured
otherwise would measure a setting, not its code. ``tests/unit/test_bench_delivery.py``
checks these against ``workers.config.celery_config``.
"""

from __future__ import annotations

import os
from typing import Any

#: Keys compared with jobops' ``workers.config.celery_config``.
SHARED_KEYS = ("task_serializer", "accept_content", "task_ignore_result", "task_acks_late",
               "task_reject_on_worker_lost", "worker_prefetch_multiplier",
               "worker_eta_task_limit")


def delivery_settings() -> dict[str, Any]:
    """Celery settings as jobops' app has them, read from the same environment."""
    return {
        "broker_url": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "broker_transport_options": {"visibility_timeout": float(
            os.environ.get("JOBOPS_VISIBILITY_TIMEOUT_SECONDS", "7200"))},
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_eta_task_limit": int(os.environ.get("JOBOPS_ETA_TASK_LIMIT", "10000")),
    }
