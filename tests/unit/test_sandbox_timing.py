"""The sandbox's IN_PROGRESS controls that the benchmark relies on."""

from __future__ import annotations

from jobops.core.urns import query_string
from sandbox import SandboxConfig, SandboxState

DESCRIPTION = "A role for people who like building reliable systems. " * 3


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _post(state: SandboxState, count: int) -> list[str]:
    token = state.issue_token({"grant_type": ["client_credentials"],
                               "client_id": ["sandbox-client"],
                               "client_secret": ["sandbox-secret"]})[1]["access_token"]
    elements = [{"externalJobPostingId": f"job-{i}", "title": "Engineer",
                 "description": DESCRIPTION, "companyApplyUrl": "https://example.com/a",
                 "location": "Dublin, Ireland", "listedAt": 0,
                 "jobPostingOperationType": "CREATE"} for i in range(count)]
    status, body, _ = state.post_jobs({"elements": elements}, f"Bearer {token}",
                                      "batch_create")
    assert status == 200
    return [e["id"] for e in body["elements"]]


def _status(state: SandboxState, urn: str) -> str:
    token = state.issue_token({"grant_type": ["client_credentials"],
                               "client_id": ["sandbox-client"],
                               "client_secret": ["sandbox-secret"]})[1]["access_token"]
    _, body, _ = state.task_status(query_string([urn]), f"Bearer {token}")
    return str(body["results"][urn]["status"])


def test_in_progress_share_picks_that_share_of_tasks() -> None:
    state = SandboxState(SandboxConfig(in_progress_seconds=5, in_progress_share=0.3))
    urns = _post(state, 100) + _post(state, 100)
    slow = [u for u in urns if state.task(u).wait_seconds > 0]
    assert 35 <= len(slow) <= 85
    fast = next(u for u in urns if u not in slow)
    assert _status(state, fast) == "SUCCEEDED"
    assert _status(state, slow[0]) == "IN_PROGRESS"


def test_in_progress_time_can_count_from_the_first_check() -> None:
    clock = Clock()
    state = SandboxState(SandboxConfig(in_progress_seconds=2, in_progress_share=1.0,
                                       in_progress_from_first_check=True), clock=clock)
    urn = _post(state, 1)[0]
    clock.now += 60  # long past creation + 2 s: the wait has not started yet
    assert _status(state, urn) == "IN_PROGRESS"
    assert state.task(urn).ready_at == clock.now + 2
    clock.now += 1.9
    assert _status(state, urn) == "IN_PROGRESS"
    clock.now += 0.2
    assert _status(state, urn) == "SUCCEEDED"
