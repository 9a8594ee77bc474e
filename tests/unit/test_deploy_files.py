"""The Procfile and docker-compose.yml keep the promises the README makes of them."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def compose() -> dict[str, dict[str, object]]:
    services: dict[str, dict[str, object]] = yaml.safe_load(
        (ROOT / "docker-compose.yml").read_text())["services"]
    return services


def test_flower_requires_a_login_everywhere() -> None:
    assert "--basic-auth=" in procfile()["flower"]
    assert "--basic-auth=" in " ".join(compose()["flower"]["command"])  # type: ignore[arg-type]


def test_procfile_runs_worker_flower_and_sandbox() -> None:
    processes = procfile()
    assert processes["worker"].startswith("celery -A workers worker")
    assert processes["sandbox"].startswith("jobops sandbox")


def test_compose_redis_persists_and_workers_scale() -> None:
    services = compose()
    assert "--appendonly" in services["redis"]["command"]  # type: ignore[operator]
    assert services["redis"]["volumes"]
    worker = services["worker"]
    # A fixed name or host port would stop `docker compose up --scale worker=N`.
    assert "container_name" not in worker and "ports" not in worker
    assert worker["environment"]["REDIS_URL"].startswith("${REDIS_URL:-redis://redis")  # type: ignore[index]
