"""The Procfile and docker-compose.yml keep the promises the README makes of them."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def compose(name: str = "docker-compose.yml") -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = yaml.safe_load((ROOT / name).read_text())["services"]
    return services


COMPOSE_FILES = ("docker-compose.yml", "docker-compose.sandbox.yml")
LINKEDIN = ("LINKEDIN_API_URL", "LINKEDIN_TOKEN_URL", "LINKEDIN_CLIENT_ID",
            "LINKEDIN_CLIENT_SECRET")


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


def test_compose_never_defaults_linkedin_to_the_sandbox() -> None:
    services = compose()
    assert "sandbox" not in services  # opt-in: docker-compose.sandbox.yml
    worker = services["worker"]["environment"]
    for variable in LINKEDIN:
        # No value: taken from the shell or .env if set there, else unset, so the settings'
        # https:// LinkedIn URLs apply and a worker without credentials refuses to start.
        assert variable in worker and worker[variable] is None, variable
    for name, service in services.items():
        assert "sandbox" not in yaml.safe_dump(service), name


def test_the_sandbox_stack_is_an_override_whose_settings_load() -> None:
    override = compose("docker-compose.sandbox.yml")
    assert override["sandbox"]["command"][:2] == ["jobops", "sandbox"]
    worker = override["worker"]["environment"]
    assert worker["LINKEDIN_API_URL"] == "http://sandbox:8099"
    settings = load_settings(**worker)  # plain HTTP to another host: allowed, by name
    assert settings.allow_plain_http and settings.linkedin_client_id


def test_published_ports_bind_to_this_machine_unless_asked() -> None:
    published = {(name, port) for file in COMPOSE_FILES
                 for name, service in compose(file).items()
                 for port in service.get("ports", [])}
    assert {name for name, _ in published} == {"flower", "metrics", "sandbox"}
    for name, port in published:
        assert port.startswith("${PUBLISH_ADDRESS:-127.0.0.1}:"), (name, port)
    assert "--host ${METRICS_HOST:-127.0.0.1}" in procfile()["metrics"]
    assert "--address=${FLOWER_ADDRESS:-127.0.0.1}" in procfile()["flower"]
