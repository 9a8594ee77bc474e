"""poll() and run_once() with a scripted fetcher: every URN lands in exactly one bucket."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from jobops.core.errors import BadBatchKey, TransientError
from jobops.core.outcomes import Operation
from jobops.core.polling import StatusPage, poll
from jobops.core.request import VerificationRequest
from jobops.core.rounds import run_once
from settings import load_settings

A, B, C, D = (f"urn:li:simpleJobPostingTask:{c * 8}" for c in "abcd")


class Scripted:
    def __init__(self, answer: Callable[[list[str]], StatusPage]) -> None:
        self.answer = answer
        self.asked: list[list[str]] = []

    def fetch(self, urns: list[str], now: float) -> StatusPage:
        self.asked.append(sorted(urns))
        return self.answer(urns)

    def request_refused(self, error: Exception) -> float:
        raise AssertionError(f"the fleet was paused: {error}")


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
                          errors={C: {"status": 404, "message": "not found"}})

    result = run_once(request([A, B, C, "junk"], poll_round=3), Scripted(answer), SETTINGS,
                      now=1000.0, jitter=lambda: 1.0)
    statuses = {o["task_urn"]: o["status"] for o in result.outcomes}
    assert statuses == {"junk": "INVALID", A: "FAILED", C: "INVALID"}
    failed = next(o for o in result.outcomes if o["task_urn"] == A)
    assert failed["errors"][0]["field"] == "/title" and failed["job_live"] is None
    assert failed["context"] == {"k": 1}
    assert result.pending == [B]
    assert result.next_check_seconds == 80.0  # 10 * 2**3, full jitter


def test_run_once_caps_the_wait_at_the_deadline_then_asks_once_more() -> None:
    fetcher = Scripted(lambda urns: StatusPage(results={A: entry(A, "IN_PROGRESS")}))
    lifespan = SETTINGS.task_lifespan_seconds
    near_end = run_once(request([A]), fetcher, SETTINGS, now=lifespan - 5, jitter=lambda: 1.0)
    assert near_end.pending == [A] and near_end.next_check_seconds == 5
    after = run_once(request([A]), fetcher, SETTINGS, now=lifespan, jitter=lambda: 1.0)
    assert after.pending == [] and [o["status"] for o in after.outcomes] == ["EXPIRED"]
    assert after.outcomes[0]["errors"][0]["code"] == "STILL_IN_PROGRESS_AT_EXPIRY"
    assert len(fetcher.asked) == 2  # the check at the deadline asked LinkedIn


def test_a_task_that_ended_in_the_last_interval_is_not_expired() -> None:
    fetcher = Scripted(lambda urns: StatusPage(results={A: entry(A, "SUCCEEDED")}))
    at_deadline = run_once(request([A]), fetcher, SETTINGS,
                           now=SETTINGS.task_lifespan_seconds + 0.5, jitter=lambda: 1.0)
    assert [o["status"] for o in at_deadline.outcomes] == ["SUCCEEDED"]


def test_a_failing_check_at_the_deadline_retries_briefly_then_expires_saying_why() -> None:
    def answer(urns: list[str]) -> StatusPage:
        raise TransientError("Internal Server Error", http_status=503)

    lifespan = SETTINGS.task_lifespan_seconds
    first = run_once(request([A]), Scripted(answer), SETTINGS, now=lifespan, jitter=lambda: 1.0)
    assert first.pending == [A] and first.outcomes == []
    assert first.next_check_seconds is not None
    assert first.next_check_seconds <= SETTINGS.max_poll_interval_seconds
    last = run_once(request([A]), Scripted(answer), SETTINGS,
                    now=lifespan + SETTINGS.max_poll_interval_seconds, jitter=lambda: 1.0)
    [expired] = last.outcomes
    assert expired["status"] == "EXPIRED" and last.pending == []
    assert expired["errors"][0]["code"] == "NOT_CHECKED_AT_EXPIRY"
    assert "HTTP 503" in expired["errors"][0]["message"]


def test_a_task_linkedin_forgot_at_the_deadline_is_expired_not_invalid() -> None:
    fetcher = Scripted(lambda urns: StatusPage(errors={A: {"status": 404,
                                                           "message": "not found"}}))
    result = run_once(request([A]), fetcher, SETTINGS, now=SETTINGS.task_lifespan_seconds)
    assert [o["status"] for o in result.outcomes] == ["EXPIRED"]


def test_fields_of_an_unexpected_type_do_not_break_a_run() -> None:
    def answer(urns: list[str]) -> StatusPage:
        return StatusPage(results={
            A: {"id": A, "status": "FAILED", "errorMessage": {"code": 7, "text": "odd"},
                "externalJobPostingId": 17, "location": ["Dublin"]},
            B: {"id": B, "status": ["SUCCEEDED"]},
            C: {"id": C, "status": "SUCCEEDED", "jobPosting": 5},
        })

    result = run_once(request([A, B, C]), Scripted(answer), SETTINGS, now=1000.0)
    by_urn = {o["task_urn"]: o for o in result.outcomes}
    assert by_urn[A]["status"] == "FAILED" and "odd" in by_urn[A]["error_message"]
    assert by_urn[A]["errors"][0]["code"] == "UNKNOWN"
    assert by_urn[A]["external_job_posting_id"] == "17"
    assert by_urn[C]["job_posting"] == "5"
    assert result.pending == [B]  # a status that is not a known text is asked again


def test_retry_after_is_honoured_and_spread() -> None:
    def answer(urns: list[str]) -> StatusPage:
        raise TransientError("throttled", http_status=429, retry_after_seconds=42)

    earliest = run_once(request([A]), Scripted(answer), SETTINGS, now=0.0, jitter=lambda: 0.0)
    assert earliest.next_check_seconds == 42 and earliest.pending == [A]
    assert earliest.outcomes == []
    latest = run_once(request([A]), Scripted(answer), SETTINGS, now=0.0, jitter=lambda: 1.0)
    # Thousands of verifications told 42 s wake over the next few seconds, not at once.
    assert latest.next_check_seconds is not None and latest.next_check_seconds > 42 + 5


def test_a_shared_wait_is_spread_and_stays_within_the_cap() -> None:
    from jobops.core.cadence import spread_seconds

    assert spread_seconds(10, 100, lambda: 0.0) == 10
    assert spread_seconds(10, 100, lambda: 1.0) == 12  # a fifth of the wait
    assert spread_seconds(0.1, 100, lambda: 1.0) == 1.1  # at least a second
    # At the cap the spread comes off: early is one more look, late breaks the bound.
    assert spread_seconds(3600, 1800, lambda: 0.0) == 1800
    assert spread_seconds(3600, 1800, lambda: 1.0) == 1800 - 720


def test_at_the_end_a_known_final_status_is_reported_as_linkedin_said() -> None:
    from jobops.core.rounds import expire_unchecked

    known = {A: entry(A, "SUCCEEDED", jobPosting="urn:li:jobPosting:1"),
             B: entry(B, "IN_PROGRESS")}
    result = expire_unchecked(request([A, B, "junk"]), SETTINGS, 5.0, "RuntimeError: x",
                              known)
    by_urn = {o["task_urn"]: o for o in result.outcomes}
    assert by_urn[A]["status"] == "SUCCEEDED" and by_urn[A]["job_posting"].endswith(":1")
    assert by_urn[B]["status"] == "EXPIRED"
    assert by_urn[B]["errors"][0]["code"] == "NOT_CHECKED_AT_EXPIRY"
    assert "RuntimeError: x" in by_urn[B]["errors"][0]["message"]
    assert by_urn["junk"]["status"] == "INVALID"
