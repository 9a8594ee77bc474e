"""The Procfile and the compose files keep the promises the README makes of them.

Read as their tools read them: compose files as YAML (anchors merged), each Procfile
command split into arguments as the shell splits it; values like
``${PUBLISH_ADDRESS:-127.0.0.1}`` are taken apart into variable and default.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
LINKEDIN = ("LINKEDIN_API_URL", "LINKEDIN_TOKEN_URL", "LINKEDIN_CLIENT_ID",
            "LINKEDIN_CLIENT_SECRET")
JOBOPS_ENV = ("REDIS_URL", "CELERY_BROKER_URL", "JOBOPS_REDIS_MASTER_NAME", "JOBOPS_QUEUE",
              "JOBOPS_CALLBACK_QUEUE")
_DEFAULTED = re.compile(r"\$\{(\w+):-([^}]*)\}")
_REQUIRED = re.compile(r"\$\{(\w+):\?([^}]+)\}")


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def argv(command: str) -> list[str]:
    """The arguments of a Procfile command's last part (after any ``;`` guard)."""
    words = shlex.split(command.rsplit(";", 1)[-1])
    return words[1:] if words[:1] == ["exec"] else words


def compose(name: str = "docker-compose.yml") -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())
    return document


def services(name: str = "docker-compose.yml") -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose(name)["services"]
    return found


def defaulted(value: str) -> tuple[str, str]:
    """``${NAME:-default}`` as (NAME, default)."""
    match = _DEFAULTED.fullmatch(value)
    assert match, f"{value!r} is not ${{NAME:-default}}"
    return match.group(1), match.group(2)


def options(words: list[str]) -> dict[str, str]:
    """``--name value`` and ``--name=value`` pairs of a command."""
    found = {}
    for index, word in enumerate(words):
        if word.startswith("--"):
            name, sep, value = word.partition("=")
            found[name] = value if sep else words[index + 1]
    return found


def logins(command: list[str]) -> list[str]:
    """Flower's login options (tornado takes ``--basic_auth`` and ``--basic-auth``)."""
    return [a for a in command if a.replace("_", "-").startswith("--basic-auth")]


def durations_seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", value)
    assert match, value
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def test_each_file_holds_the_promised_processes() -> None:
    assert set(procfile()) == {"worker", "flower", "sandbox", "metrics"}
    assert set(services()) == {"redis", "worker", "flower", "metrics", "rabbitmq",
                               "redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"}
    assert set(compose()["volumes"]) == {"redis-data", "redis-replica-data", "rabbitmq-data"}
    assert set(services("docker-compose.sandbox.yml")) == {"sandbox", "worker"}


def test_compose_redis_persists_refuses_eviction_and_stays_private() -> None:
    redis = services()["redis"]
    assert redis["image"].split(":")[0] == "redis"
    command = redis["command"]
    assert command[0] == "redis-server"
    assert dict(zip(command[1::2], command[2::2], strict=True)) == {
        "--appendonly": "yes", "--appendfsync": "everysec",
        "--maxmemory-policy": "noeviction"}
    assert redis["volumes"] == ["redis-data:/data"]
    assert "ports" not in redis
    health = redis["healthcheck"]
    assert health["test"] == ["CMD", "redis-cli", "ping"]
    assert durations_seconds(health["interval"]) <= 10
    assert durations_seconds(health["timeout"]) < durations_seconds(health["interval"])
    assert health["retries"] >= 3


def test_compose_services_start_once_redis_is_healthy() -> None:
    for name in ("worker", "flower", "metrics"):
        assert services()[name]["depends_on"] == {
            "redis": {"condition": "service_healthy"},
            "rabbitmq": {"condition": "service_healthy", "required": False}}
        environment = services()[name]["environment"]
        assert set(JOBOPS_ENV) <= set(environment), name
        variable, url = defaulted(environment["REDIS_URL"])
        assert variable == "REDIS_URL" and urlsplit(url).hostname == "redis", name


def test_compose_workers_scale_restart_and_shut_down_warm() -> None:
    worker = services()["worker"]
    command = worker["command"]
    assert command[:4] == ["celery", "-A", "workers", "worker"]
    assert options(command) == {"--loglevel": "INFO", "--concurrency": "4"}
    # A fixed name or host port would stop `docker compose up --scale worker=N`.
    assert "container_name" not in worker and "ports" not in worker and "-n" not in command
    assert worker["restart"] == "unless-stopped"
    assert durations_seconds(worker["stop_grace_period"]) >= 30
    assert set(worker["environment"]) == {*JOBOPS_ENV, *LINKEDIN}


def test_compose_never_defaults_linkedin_to_the_sandbox() -> None:
    environment = services()["worker"]["environment"]
    for variable in LINKEDIN:
        # No value: taken from the shell or .env if set there, else unset, so the settings'
        # https:// LinkedIn URLs apply and a worker without credentials refuses to start.
        assert environment[variable] is None, variable
    for name, service in services().items():
        assert "sandbox" not in service.get("depends_on", {}), name
        for variable, value in (service.get("environment") or {}).items():
            if isinstance(value, str):
                default = _DEFAULTED.fullmatch(value)
                shown = default.group(2) if default else value
                assert urlsplit(shown).hostname != "sandbox", (name, variable)


def test_flower_takes_its_login_from_the_environment_only() -> None:
    # Flower reads FLOWER_BASIC_AUTH itself; on the command line ps would show it.
    flower = services()["flower"]
    assert flower["command"][:4] == ["celery", "-A", "workers", "flower"]
    assert not logins(flower["command"])
    required = _REQUIRED.fullmatch(flower["environment"]["FLOWER_BASIC_AUTH"])
    assert required and required.group(1) == "FLOWER_BASIC_AUTH"
    assert "user:password" in required.group(2)
    command = argv(procfile()["flower"])
    assert command[:4] == ["celery", "-A", "workers", "flower"]
    assert not logins(command)


def test_procfile_flower_refuses_to_start_without_a_login() -> None:
    # No PATH: were the guard missing, the shell could not start Flower, login or not.
    ran = subprocess.run(["/bin/sh", "-c", procfile()["flower"]], env={}, capture_output=True,
                         text=True, timeout=30)
    assert ran.returncode != 0
    assert "set FLOWER_BASIC_AUTH to user:password" in ran.stderr


def test_procfile_commands() -> None:
    processes = {name: argv(command) for name, command in procfile().items()}
    worker = processes["worker"]
    assert worker[:4] == ["celery", "-A", "workers", "worker"]
    assert options(worker)["--loglevel"] == "INFO"
    assert defaulted(options(worker)["--concurrency"]) == ("JOBOPS_WORKER_CONCURRENCY", "4")
    # One name per honcho process (worker.1, worker.2 get ports 5100, 5101, …).
    assert worker[worker.index("-n") + 1] == "jobops-$PORT@%h"
    assert processes["sandbox"][:2] == ["jobops", "sandbox"]
    assert defaulted(options(processes["sandbox"])["--port"]) == ("SANDBOX_PORT", "8099")
    assert processes["metrics"][:2] == ["jobops", "metrics"]


def test_the_sandbox_stack_is_an_override_whose_settings_load() -> None:
    override = services("docker-compose.sandbox.yml")
    sandbox = override["sandbox"]
    assert sandbox["command"][:2] == ["jobops", "sandbox"]
    assert options(sandbox["command"]) == {"--host": "0.0.0.0", "--port": "8099"}
    worker = override["worker"]
    assert worker["depends_on"] == {"sandbox": {"condition": "service_started"}}
    environment = worker["environment"]
    assert set(environment) == {*LINKEDIN, "JOBOPS_ALLOW_PLAIN_HTTP"}
    assert urlsplit(environment["LINKEDIN_API_URL"])[:2] == ("http", "sandbox:8099")
    settings = load_settings(**environment)  # plain HTTP to another host: allowed, by name
    assert settings.allow_plain_http and settings.linkedin_client_id


def test_published_ports_bind_to_this_machine_unless_asked() -> None:
    listening = {}
    for file in ("docker-compose.yml", "docker-compose.sandbox.yml"):
        for name, service in services(file).items():
            if "ports" in service:
                listening[name] = (service["ports"], options(service["command"])["--port"])
    assert set(listening) == {"flower", "metrics", "sandbox"}
    for name, (ports, port) in listening.items():
        [published] = ports
        address, host_port, container_port = re.fullmatch(
            r"(\$\{[^}]+\}):(\d+):(\d+)", published).groups()  # type: ignore[union-attr]
        assert defaulted(address) == ("PUBLISH_ADDRESS", "127.0.0.1"), name
        # Published where the service listens inside its container.
        assert host_port == container_port == port, name
    for name, option, variable in (("metrics", "--host", "METRICS_HOST"),
                                   ("flower", "--address", "FLOWER_ADDRESS")):
        assert defaulted(options(argv(procfile()[name]))[option]) == (variable, "127.0.0.1")


def test_rabbitmq_is_a_profile_of_its_own_private_and_persistent() -> None:
    rabbitmq = services()["rabbitmq"]
    assert rabbitmq["profiles"] == ["rabbitmq"]
    assert rabbitmq["image"].split(":")[0] == "rabbitmq"
    # Quorum queues and Celery's delay exchanges need RabbitMQ 3.8 or newer.
    assert tuple(map(int, rabbitmq["image"].split(":")[1].split("."))) >= (3, 8)
    assert "ports" not in rabbitmq
    assert rabbitmq["volumes"] == ["rabbitmq-data:/var/lib/rabbitmq"]
    assert rabbitmq["healthcheck"]["test"][:2] == ["CMD", "rabbitmq-diagnostics"]
    # No password of ours in the file: the shell's or .env's.
    assert defaulted(rabbitmq["environment"]["RABBITMQ_DEFAULT_PASS"]) == (
        "RABBITMQ_PASSWORD", "")
    for name in ("worker", "flower", "metrics"):
        assert services()[name]["environment"]["CELERY_BROKER_URL"] is None, name


def test_sentinel_is_a_profile_watching_the_primary_jobops_names() -> None:
    replica = services()["redis-replica"]
    assert replica["profiles"] == ["sentinel"] and "ports" not in replica
    assert replica["command"][-3:] == ["--replicaof", "redis", "6379"]
    assert "noeviction" in replica["command"]
    sentinels = [services()[f"sentinel-{n}"] for n in (1, 2, 3)]
    variable, master = defaulted(services()["worker"]["environment"][
        "JOBOPS_REDIS_MASTER_NAME"])
    assert variable == "JOBOPS_REDIS_MASTER_NAME"
    for sentinel in sentinels:
        assert sentinel["profiles"] == ["sentinel"] and "ports" not in sentinel
        script = sentinel["command"][0]
        # A majority of the three must agree the primary is down.
        assert f"sentinel monitor {master} redis 6379 2" in script
        assert script.endswith("--sentinel")
