"""The Procfile and docker-compose.yml keep the promises the README makes of them."""

from __future__ import annotations

import subprocess
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


def test_flower_takes_its_login_from_the_environment_only() -> None:
    # Flower reads FLOWER_BASIC_AUTH itself; on the command line ps would show it.
    assert "--basic-auth" not in procfile()["flower"]
    flower = compose()["flower"]
    assert "--basic-auth" not in " ".join(flower["command"])  # type: ignore[arg-type]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith(  # type: ignore[index]
        "${FLOWER_BASIC_AUTH:?")


def test_procfile_flower_refuses_to_start_without_a_login() -> None:
    # No PATH: were the guard missing, the shell could not start Flower, login or not.
    ran = subprocess.run(["/bin/sh", "-c", procfile()["flower"]], env={}, capture_output=True,
                         text=True, timeout=30)
    assert ran.returncode != 0
    assert "set FLOWER_BASIC_AUTH to user:password" in ran.stderr


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
