"""Unit tests touch no Redis, no worker and no sandbox: a test that asks for one of their
fixtures belongs in tests/integration."""

from __future__ import annotations

import pytest

#: Fixtures (tests/conftest.py) that reach Redis, start workers or serve the sandbox.
INFRASTRUCTURE = frozenset({"store", "sandbox", "sandbox_server", "workers", "recorder",
                            "jobops_worker", "bench_worker", "redis_server"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = INFRASTRUCTURE & set(getattr(item, "fixturenames", ()))
        if used and item.path.is_relative_to(item.config.rootpath / "tests" / "unit"):
            raise pytest.UsageError(f"{item.nodeid} is a unit test but uses "
                                    f"{', '.join(sorted(used))}: move it to tests/integration")
