"""Child processes for the demo and the tests: a Redis server and Celery workers."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import redis

from jobops.core.errors import ConfigurationError, JobopsError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def start_redis(log_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A throwaway Redis on a free port; returns the process and its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ConfigurationError(
            "no Redis answers at REDIS_URL and redis-server is not installed: install Redis "
            "(apt install redis-server) or set REDIS_URL to a running one"
        )
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", str(log_dir)],
        stdout=(log_dir / "redis.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not redis_answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            raise ConfigurationError(f"redis-server did not start; see {log_dir / 'redis.log'}")
        time.sleep(0.05)
    return process, url


def start_worker(app: str, queues: str, env: Mapping[str, str], log_path: Path,
                 concurrency: int = 2, name: str | None = None,
                 extra_args: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """``celery -A app worker`` in its own process group, its output in ``log_path``."""
    command = [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queues,
               "-c", str(concurrency), "--loglevel", "INFO", "--without-gossip",
               "--without-mingle", "-n", name or f"{app}-{os.getpid()}-{free_port()}@%h",
               *extra_args]
    return subprocess.Popen(command, env={**os.environ, **env},
                            stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_ready(process: subprocess.Popen[bytes], log_path: Path, timeout_seconds: float = 60
               ) -> None:
    """Wait for Celery's "ready." line; raise with the log's tail if the worker dies."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        if " ready." in text:
            return
        if process.poll() is not None or time.monotonic() > deadline:
            tail = "\n".join(text.splitlines()[-20:])
            raise JobopsError(f"worker did not start (see {log_path}):\n{tail}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes], timeout_seconds: float = 10) -> None:
    """SIGTERM the process group (warm shutdown), then SIGKILL what is left."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        process.terminate()
    try:
        process.wait(timeout_seconds)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
