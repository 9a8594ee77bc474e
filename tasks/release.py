"""``jobops.release_held``: sends the held rounds due by its second (RabbitMQ)."""

from __future__ import annotations

from typing import Any

from jobops.core.request import RELEASE_TASK
from workers import app
from workers.release import release_due
from workers.runtime import runtime


@app.task(name=RELEASE_TASK)
def release_held(second: Any = None) -> dict[str, Any]:
    """Send the message of every held round due by ``second`` (the one this message was
    sent for) or by now, whichever is later: a worker whose clock runs behind the fleet's
    still lets out every round of its second.

    A release that fails leaves what it took held: due again a minute later, for the
    next release or the sweeper.
    """
    fleet = runtime()
    now = fleet.clock.now()
    due_by = max(now, float(second)) if isinstance(second, (int, float)) else now
    return {"second": second, "released": release_due(fleet, now, due_by=due_by)}
