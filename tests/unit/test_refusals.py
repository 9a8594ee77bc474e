"""poll() when LinkedIn answers 400: a URN is INVALID only with evidence, never by default."""

from __future__ import annotations

from collections.abc import Callable

from jobops.core.errors import BadBatchKey, LinkedInError, RequestRefused
from jobops.core.polling import ISOLATION_CALLS, StatusPage, poll
from jobops.core.urns import CANARY_URN

URNS = [f"urn:li:simpleJobPostingTask:{i:08d}-1111-2222-3333-444444444444" for i in range(54)]
BATCH_KEY = "Batch key parameter value is invalid"


class Scripted:
    """A fetcher whose answer is a function of the URNs asked; counts fleet pauses."""

    def __init__(self, answer: Callable[[list[str]], StatusPage]) -> None:
        self.answer = answer
        self.asked: list[list[str]] = []
        self.pauses: list[LinkedInError] = []

    def fetch(self, urns: list[str], now: float) -> StatusPage:
        self.asked.append(list(urns))
        return self.answer(urns)

    def request_refused(self, error: LinkedInError) -> float:
        self.pauses.append(error)
        return 8.0


def succeeded(urns: list[str]) -> StatusPage:
    return StatusPage(results={u: {"id": u, "status": "SUCCEEDED"} for u in urns
                               if u != CANARY_URN},
                      errors={CANARY_URN: {"status": 404}} if CANARY_URN in urns else {})


def refuse_when(bad: Callable[[list[str]], bool], message: str = BATCH_KEY
                ) -> Callable[[list[str]], StatusPage]:
    error = BadBatchKey if "batch key" in message.lower() else RequestRefused

    def answer(urns: list[str]) -> StatusPage:
        if bad(urns):
            raise error(message, http_status=400)
        return succeeded(urns)
    return answer


def test_a_400_that_names_no_batch_key_judges_no_urn_and_pauses_the_fleet() -> None:
    fetcher = Scripted(refuse_when(lambda urns: True, "Unsupported API version"))
    report = poll(fetcher, URNS, 4096, 0.0)
    assert report.invalid == {} and report.decided == {}
    assert sorted(report.pending) == sorted(URNS)
    assert isinstance(report.error, RequestRefused)
    assert report.error.retry_after_seconds == 8.0
    assert len(fetcher.pauses) == 1
    assert len(fetcher.asked) == 2  # the call, then the canary: not 2n - 1


def test_a_batch_key_400_on_every_call_is_a_configuration_problem_too() -> None:
    # An id encoding LinkedIn stopped accepting earns the batch-key message for every URN.
    fetcher = Scripted(refuse_when(lambda urns: True))
    report = poll(fetcher, URNS, 4096, 0.0)
    assert report.invalid == {} and sorted(report.pending) == sorted(URNS)
    assert len(fetcher.pauses) == 1 and len(fetcher.asked) == 2


def test_one_single_urn_verification_refused_is_judged_by_the_canary() -> None:
    bad = URNS[0]
    fetcher = Scripted(refuse_when(lambda urns: bad in urns))
    report = poll(fetcher, [bad], 4096, 0.0)
    assert list(report.invalid) == [bad] and report.pending == []
    assert fetcher.asked == [[bad], [CANARY_URN]] and fetcher.pauses == []


def test_one_bad_urn_among_54_is_isolated_within_the_budget() -> None:
    bad = URNS[37]
    fetcher = Scripted(refuse_when(lambda urns: bad in urns))
    report = poll(fetcher, URNS, 4096, 0.0)
    assert list(report.invalid) == [bad]
    assert sorted(report.decided) == sorted(u for u in URNS if u != bad)
    assert report.pending == [] and fetcher.pauses == []
    assert len(fetcher.asked) <= 2 + ISOLATION_CALLS


def test_a_chunk_where_every_urn_is_refused_costs_a_bounded_number_of_calls() -> None:
    fetcher = Scripted(refuse_when(lambda urns: CANARY_URN not in urns))
    report = poll(fetcher, URNS, 4096, 0.0)
    assert len(fetcher.asked) <= 2 + ISOLATION_CALLS
    # What the budget did not reach stays pending for the next round, never INVALID.
    assert len(report.invalid) + len(report.pending) == len(URNS)
    assert isinstance(report.error, BadBatchKey)


def test_a_refusal_without_the_batch_key_message_needs_the_neighbours_answered() -> None:
    bad = URNS[5]
    fetcher = Scripted(refuse_when(lambda urns: bad in urns, "Illegal argument"))
    report = poll(fetcher, URNS, 4096, 0.0)
    assert list(report.invalid) == [bad]  # alone refused, every neighbour answered
    lone = Scripted(refuse_when(lambda urns: bad in urns, "Illegal argument"))
    alone = poll(lone, [bad], 4096, 0.0)
    assert alone.invalid == {} and alone.pending == [bad]  # no neighbour to compare with
    assert lone.pauses == []


def test_only_400_and_404_in_the_errors_object_are_final() -> None:
    a, b, c, d, e = URNS[:5]

    def answer(urns: list[str]) -> StatusPage:
        return StatusPage(results={}, errors={
            a: {"status": 404, "message": "not found"},
            b: {"status": 400, "message": "malformed"},
            c: {"status": 503, "message": "Internal Server Error"},
            d: {"status": 429, "message": "throttled"},
            e: {"message": "something new"},
        })

    report = poll(Scripted(answer), [a, b, c, d, e], 4096, 0.0)
    assert sorted(report.invalid) == sorted([a, b])
    assert sorted(report.pending) == sorted([c, d, e])


def test_a_transient_failure_while_isolating_keeps_everything_pending() -> None:
    bad = URNS[3]
    calls = 0

    def answer(urns: list[str]) -> StatusPage:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise LinkedInError("503", http_status=503)
        return refuse_when(lambda asked: bad in asked)(urns)

    report = poll(Scripted(answer), URNS, 4096, 0.0)
    assert report.invalid == {}
    assert len(report.decided) + len(report.pending) == len(URNS)
    assert report.error is not None and report.error.http_status == 503
