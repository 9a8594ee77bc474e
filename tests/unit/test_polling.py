"""poll() and run_once() with a scripted fetcher: every URN lands in exactly one bucket."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from jobops.client import StatusPage
from jobops.errors import BadBatchKey, TransientError
from jobops.outcomes import Operation
from jobops.polling import poll
from jobops.request import VerificationRequest
from jobops.verification import run_once
from settings import load_settings

A, B, C, D = (f"urn:li:simpleJobPostingTask:{c * 8}" for c in "abcd")


class Scripted:
    def __init__(self, answer: Callable[[list[str]], StatusPage]) -> None:
        self.answer = answer
        self.asked: list[list[str]] = []

    def fetch(self, urns: list[str], now: float) -> StatusPage:
        self.asked.append(sorted(urns))
        return self.answer(urns)


def entry(urn: str, status: str, **extra: str) -> dict[str, str]:
    return {"id": urn, "status": status, **extra}


def test_bad_batch_key_is_bisected_to_the_one_bad_urn() -> None:
    def answer(urns: list[str]) -> StatusPage:
        if C in urns:
            raise BadBatchKey("Batch key parameter value is invalid", http_status=400)
        return StatusPage(results={u: entry(u, "SUCCEEDED") for u in urns})

    report = poll(Scripted(answer), [A, B, C, D], 4096, 0.0)
    assert set(report.decided) == {A, B, D}
    assert list(report.invalid) == [C]
    assert report.pending == [] and report.error is None


def test_transient_error_stops_the_round_and_keeps_everything_pending() -> None:
    fetcher = Scripted(lambda urns: (_ for _ in ()).throw(TransientError("503")))
    report = poll(fetcher, [A, B, C], 4096, 0.0)
    assert sorted(report.pending) == sorted([A, B, C])
    assert isinstance(report.error, TransientError)
    assert len(fetcher.asked) == 1


def test_unexpected_answers_are_handled_deliberately(caplog: pytest.LogCaptureFixture) -> None:
    stranger = "urn:li:simpleJobPostingTask:zzzzzzzz"

    def answer(urns: list[str]) -> StatusPage:
        return StatusPage(
            results={A: entry("urn:li:simpleJobPostingTask:other", "SUCCEEDED"),
                     B: entry(B, "SOMETHING_NEW"), stranger: entry(stranger, "SUCCEEDED"),
                     D: entry(D, "IN_PROGRESS")},
            errors={},
        )

    with caplog.at_level(logging.INFO):
        report = poll(Scripted(answer), [A, B, C, D], 4096, 0.0)
    assert list(report.decided) == [A]  # id differing from its key: the key wins
    assert sorted(report.pending) == sorted([B, C, D])  # unknown, missing, in progress
    assert stranger not in report.decided
    text = caplog.text
    assert "SOMETHING_NEW" in text and C in text and stranger in text


def request(urns: list[str], requested_at: float = 0.0, poll_round: int = 0
            ) -> VerificationRequest:
    return VerificationRequest(tuple(urns), Operation.UPDATE, {}, {"k": 1}, requested_at,
                               poll_round)


SETTINGS = load_settings(JOBOPS_POLL_INTERVAL_SECONDS=10, JOBOPS_MAX_POLL_INTERVAL_SECONDS=100)


def test_run_once_builds_outcomes_and_plans_the_next_check() -> None:
    def answer(urns: list[str]) -> StatusPage:
        return StatusPage(results={A: entry(A, "FAILED", errorMessage="Invalid Field: /title;"),
                                   B: entry(B, "IN_PROGRESS")},
                          errors={C: {"message": "not found"}})

    result = run_once(request([A, B, C, "junk"], poll_round=3), Scripted(answer), SETTINGS,
                      now=1000.0, jitter=lambda: 1.0)
    statuses = {o["task_urn"]: o["status"] for o in result.outcomes}
    assert statuses == {"junk": "INVALID", A: "FAILED", C: "INVALID"}
    failed = next(o for o in result.outcomes if o["task_urn"] == A)
    assert failed["errors"][0]["field"] == "/title" and failed["job_live"] is None
    assert failed["context"] == {"k": 1}
    assert result.pending == [B]
    assert result.next_check_seconds == 80.0  # 10 * 2**3, full jitter


def test_run_once_caps_the_wait_at_the_deadline_then_expires() -> None:
    fetcher = Scripted(lambda urns: StatusPage(results={A: entry(A, "IN_PROGRESS")}))
    lifespan = SETTINGS.task_lifespan_seconds
    near_end = run_once(request([A]), fetcher, SETTINGS, now=lifespan - 5, jitter=lambda: 1.0)
    assert near_end.pending == [A] and near_end.next_check_seconds == 5
    after = run_once(request([A]), fetcher, SETTINGS, now=lifespan, jitter=lambda: 1.0)
    assert after.pending == [] and [o["status"] for o in after.outcomes] == ["EXPIRED"]
    assert len(fetcher.asked) == 1  # nothing is asked once the task ids are dead


def test_retry_after_is_honoured() -> None:
    def answer(urns: list[str]) -> StatusPage:
        raise TransientError("throttled", http_status=429, retry_after_seconds=42)

    result = run_once(request([A]), Scripted(answer), SETTINGS, now=0.0, jitter=lambda: 0.0)
    assert result.next_check_seconds == 42 and result.pending == [A]
    assert result.outcomes == []
