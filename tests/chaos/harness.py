"""The chaos run as a child process, for the tests and for repeated runs."""

from __future__ import annotations

import subprocess
import sys

#: How long a terminated run may take to stop its workers and its Redis.
STOP_TIMEOUT_SECONDS = 30


def run_chaos(args: list[str], timeout_seconds: float | None = None,
              capture: bool = True) -> subprocess.CompletedProcess[str]:
    """``python -m tests.chaos ARGS``; on a timeout or an interrupt it is sent SIGTERM and
    given time to unwind, since a SIGKILLed run would leave its workers and Redis behind."""
    process = subprocess.Popen([sys.executable, "-m", "tests.chaos", *args], text=True,
                               stdout=subprocess.PIPE if capture else None,
                               stderr=subprocess.STDOUT if capture else None)
    try:
        output, _ = process.communicate(timeout=timeout_seconds)
    except BaseException:
        process.terminate()
        process.communicate(timeout=STOP_TIMEOUT_SECONDS)
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, output or "")
