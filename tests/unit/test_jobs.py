from __future__ import annotations

from jobops.core.jobs import completed_jobs, establishes_state, job_summary, needs_state


def outcome(status: str, operation: str = "CREATE", live: bool | None = True,
            location: str | None = "Dublin") -> dict[str, object]:
    return {"task_urn": f"urn:li:simpleJobPostingTask:{location}", "status": status,
            "operation": operation, "external_job_posting_id": "job-1", "location": location,
            "job_live": live}


def test_a_job_completes_when_none_of_its_urns_is_pending() -> None:
    jobs = {"a": ["u1", "u2"], "b": ["u3"]}
    assert completed_jobs(jobs, pending={"u2"}, pending_unknown=False) == ["b"]
    assert completed_jobs(jobs, pending=set(), pending_unknown=False) == ["a", "b"]
    # A pending URN whose job is not known yet might belong to any job.
    assert completed_jobs(jobs, pending={"u9"}, pending_unknown=True) == []


def test_summary_names_the_locations_that_did_not_succeed() -> None:
    summary = job_summary("job-1", "CREATE", {"k": 1}, [
        outcome("SUCCEEDED", location="Dublin"), outcome("FAILED", live=False, location="X")])
    assert summary["all_succeeded"] is False
    assert [e["location"] for e in summary["not_succeeded"]] == ["X"]
    assert summary["statuses"] == {"SUCCEEDED": 1, "FAILED": 1}
    assert summary["task_urns"] == 2 and summary["context"] == {"k": 1}


def test_which_outcomes_set_or_borrow_the_job_state() -> None:
    assert establishes_state(outcome("SUCCEEDED"))
    assert establishes_state(outcome("FAILED", live=False))
    assert not establishes_state(outcome("PROCESSED", live=None))
    assert not establishes_state({**outcome("FAILED", "UPDATE", live=True),
                                  "job_live_from": {"task_urn": "x"}})
    assert not establishes_state({"kind": "job_summary", "external_job_posting_id": "job-1"})
    assert needs_state(outcome("FAILED", "UPDATE", live=None))
    assert needs_state(outcome("FAILED", "CLOSE", live=None))
    assert not needs_state(outcome("FAILED", "CREATE", live=False))
    assert not needs_state(outcome("SUCCEEDED", "UPDATE"))
