"""``jobops.release_held``: sends the held first rounds due by its second (RabbitMQ)."""

from __future__ import annotations

from typing import Any

from jobops.core.request import RELEASE_TASK
from workers import app
from workers.release import release_due
from workers.runtime import runtime


@app.task(name=RELEASE_TASK)
def release_held(second: Any = None) -> dict[str, Any]:
    """Send the message of every held round due by now (``second``: the one this message
    was sent for, shown in Flower).

    A release that fails leaves what it took held: due again a minute later, for the
    next release or the sweeper.
    """
    fleet = runtime()
    return {"second": second, "released": release_due(fleet, fleet.clock.now())}
