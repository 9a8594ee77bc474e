"""The baselines run with jobops' own delivery settings, so a comparison measures code."""

from __future__ import annotations

import pytest

from bench.delivery import SHARED_KEYS, delivery_settings
from settings import Settings
from workers.config import celery_config


@pytest.mark.parametrize("env", [{}, {"JOBOPS_ETA_TASK_LIMIT": "250",
                                      "JOBOPS_VISIBILITY_TIMEOUT_SECONDS": "900"}])
def test_baselines_share_jobops_delivery_settings(monkeypatch: pytest.MonkeyPatch,
                                                  env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    ours = celery_config(Settings())
    theirs = delivery_settings()
    assert {k: theirs[k] for k in SHARED_KEYS} == {k: ours[k] for k in SHARED_KEYS}
    assert (theirs["broker_transport_options"]["visibility_timeout"]
            == ours["broker_transport_options"]["visibility_timeout"])
