"""A Redis of the run's own: killed with SIGKILL and restarted on the same port and files."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from jobops.dev.processes import free_port

PASSWORD = "chaos-redis-password"
#: How long a (re)started Redis may take to load its append-only file and answer.
START_TIMEOUT_SECONDS = 10.0


class RedisServer:
    """Append-only, fsynced on every write: a SIGKILL loses nothing Redis acknowledged, as
    a production Redis with `appendfsync always` would (with `everysec` it may lose the last
    second, which jobops cannot be asked to survive)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("the chaos run starts a Redis of its own and needs redis-server:"
                               " install Redis (apt install redis-server)")
        # Its own session, so a Ctrl-C meant for the run does not take Redis down first.
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--requirepass",
             PASSWORD, "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--dir", str(self.workdir)],
            stdout=(self.workdir / "redis.log").open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                client.ping()
                return
            # Also BusyLoadingError: after a kill, Redis answers LOADING until it has read
            # its append-only file.
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"chaos Redis did not start; see {self.workdir}/redis.log"
                                       ) from None
                time.sleep(0.05)

    def kill_and_restart(self) -> float:
        """SIGKILL (no flush, no goodbye to clients), then start again; returns downtime."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.start()
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
