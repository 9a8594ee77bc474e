"""Every error message of the seed, copied exactly, maps to its code and field(s)."""

from __future__ import annotations

import pytest

from jobops.core.catalogue import parse_error_message

SEED_DUPLICATE = (
    "Job processing failed due to a client-side error. Please check payload and integration "
    "setup. Error details: Trying to create a job with same partnerIdentifier already exists. "
    "It is duplicate creation request for a basic job or a non-draft premium job. Dropping the "
    "duplicate job posting creation request. LinkedIn job id: {job_id}, externalJobPostingId: "
    "{jobPostingId}"
)
SEED_DROPPED_DESCRIPTION = (
    "Job {} was dropped: true Invalid Field: /description; Drop Message: The description "
    "length should be at least 100 characters"
)
SEED_RENEW = (
    "Job processing failed due to a client-side error. Please check payload and integration "
    "setup. Error details: Operation type RENEW is not allowed for a non-existing job"
)
SEED_UPDATE = (
    "Job processing failed due to a client-side error. Please check payload and integration "
    "setup. Error details: Operation type UPDATE is not allowed for a non-existing job of "
    "partner urn urn:li:jobPostingPartner:11157465, partner job code (externalJobPostingId)"
)
SEED_DESCRIPTION = "The description length should be at least 100 characters"
SEED_SAMPLE = (
    "Job {partner=urn:li:jobPostingPartner:68204513, partnerJobCode=goldc04-03-12030896745} "
    "was dropped: true\n\nInvalid Field: /city; \nInvalid Field: /postalCode; \nInvalid Field: "
    "/state; \nInvalid Field: /geoLocation; "
)


def codes(message: str) -> list[tuple[str, str | None]]:
    return [(e["code"], e["field"]) for e in parse_error_message(message)]


@pytest.mark.parametrize(("message", "expected"), [
    (SEED_DUPLICATE, [("DUPLICATE_CREATE", "externalJobPostingId")]),
    (SEED_DROPPED_DESCRIPTION, [("DESCRIPTION_TOO_SHORT", "/description")]),
    (SEED_RENEW, [("RENEW_UNKNOWN_JOB", "externalJobPostingId")]),
    (SEED_UPDATE, [("UPDATE_UNKNOWN_JOB", "externalJobPostingId")]),
    (SEED_DESCRIPTION, [("DESCRIPTION_TOO_SHORT", "/description")]),
    (SEED_SAMPLE, [("INVALID_FIELD", "/city"), ("INVALID_FIELD", "/postalCode"),
                   ("INVALID_FIELD", "/state"), ("INVALID_FIELD", "/geoLocation")]),
])
def test_seed_messages(message: str, expected: list[tuple[str, str | None]]) -> None:
    assert codes(message) == expected
    assert all(e["resolution"] for e in parse_error_message(message))


@pytest.mark.parametrize(("message", "expected"), [
    ("This job is blocked as its title is marked invalid [JOB_FIELD_PROCESSOR_12]",
     [("FIELD_BLOCKED", "title")]),
    ("We could not standardize your job's location", [("INVALID_LOCATION", "/location")]),
    ("Your budget has ran out", [("NO_BUDGET", None)]),
    ("The job was dropped because of an unexpected error", [("LINKEDIN_INTERNAL_ERROR", None)]),
    ("ERROR :: /title :: field is required but not found and has no default",
     [("FIELD_REQUIRED", "/title")]),
    ("ERROR :: /title :: length must be at most 200 characters", [("INVALID_FIELD", "/title")]),
    ("Cannot close job which is already closed or does not exist",
     [("CLOSE_UNKNOWN_JOB", "externalJobPostingId")]),
])
def test_longer_list(message: str, expected: list[tuple[str, str | None]]) -> None:
    assert codes(message) == expected


def test_unknown_message_keeps_the_raw_text() -> None:
    [entry] = parse_error_message("Something new went wrong")
    assert entry["code"] == "UNKNOWN" and entry["message"] == "Something new went wrong"


@pytest.mark.parametrize("message", [None, "", "   "])
def test_no_message_no_errors(message: str | None) -> None:
    assert parse_error_message(message) == []
