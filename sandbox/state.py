"""The sandbox's memory: tokens, jobs and tasks, and the rules that decide each task.

Every public method takes the lock, so the HTTP threads can share one state. Tasks are
decided when they are created (what LinkedIn would say), and show IN_PROGRESS until
their ``ready_at``. Where LinkedIn's behaviour is undocumented, the choice is marked.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from jobops.core.urns import is_task_urn

OPERATIONS = ("CREATE", "UPDATE", "RENEW", "CLOSE")
REQUIRED_FIELDS = ("externalJobPostingId", "title", "description", "companyApplyUrl",
                   "location", "listedAt", "jobPostingOperationType")
# RENEW and CLOSE name a job that exists; the sandbox asks only for its id.
REQUIRED_FOR_EXISTING = ("externalJobPostingId", "jobPostingOperationType")
CLIENT_ERROR = ("Job processing failed due to a client-side error. Please check payload and "
                "integration setup. Error details: ")
Response = tuple[int, dict[str, Any], dict[str, str]]
# What the sandbox can do wrong on a status call, as a real API and network might.
FAULTS = ("error_5xx", "timeout", "slow", "reset", "malformed", "truncated", "throttle",
          "revoke")


@dataclass
class SandboxConfig:
    client_id: str = "sandbox-client"
    client_secret: str = "sandbox-secret"
    token_lifetime_seconds: float = 1800.0
    # LinkedIn's samples show expires_in as a string.
    expires_in_as_string: bool = True
    # What the token endpoint claims; None: the real lifetime. Lets a test make tokens
    # die earlier than the client was told.
    advertised_expires_in_seconds: float | None = None
    in_progress_seconds: float = 2.0
    in_progress_jitter_seconds: float = 0.0
    # The share of new tasks that stay IN_PROGRESS for in_progress_seconds; the rest are
    # decided at once.
    in_progress_share: float = 1.0
    # Count the IN_PROGRESS time from a task's first status call instead of its creation,
    # so a benchmark can be sure that share is IN_PROGRESS at its first check.
    in_progress_from_first_check: bool = False
    migrating_organizations: frozenset[str] = frozenset()
    unknown_locations: frozenset[str] = frozenset({"Atlantis", "Nowhere"})
    # Probability per status call of each fault; see FAULTS.
    fault_rates: dict[str, float] = field(default_factory=dict)
    fault_timeout_seconds: float = 3.0
    fault_slow_seconds: float = 0.5
    max_query_bytes: int = 4096
    max_elements: int = 100
    max_locations: int = 7


@dataclass
class SandboxTask:
    urn: str
    external_id: str
    operation: str
    location: str | None
    ready_at: float
    final: dict[str, Any]
    held: bool = False
    wait_seconds: float = 0.0
    first_checked_at: float | None = None


@dataclass
class CallRecord:
    at: float
    path: str
    status: int
    query: str = ""

    @property
    def ids(self) -> int:
        """How many task URNs the call asked about."""
        return self.query.count("ids=")

    @property
    def query_bytes(self) -> int:
        return len(self.query.encode())

    def asked(self) -> list[str]:
        """The task URNs this call asked about."""
        return parse_qs(self.query, keep_blank_values=True).get("ids", [])


@dataclass
class _Job:
    live: bool
    job_posting: str


@dataclass
class SandboxState:
    config: SandboxConfig = field(default_factory=SandboxConfig)
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self._jobs: dict[str, _Job] = {}
        self._tasks: dict[str, SandboxTask] = {}
        self._script: deque[Response] = deque()
        self._storm: tuple[float, Response] | None = None
        self._token_script: deque[tuple[int, float]] = deque()
        self._held_jobs: set[str] = set()
        self.calls: list[CallRecord] = []
        self.token_requests = 0
        self.refused_elements = 0
        self.faults: dict[str, int] = {}
        self._forced_faults: deque[str] = deque()
        self._random = random.Random(7)

    # ----- test controls -----------------------------------------------------------

    def script(self, status: int, body: dict[str, Any] | None = None,
               headers: dict[str, str] | None = None, times: int = 1) -> None:
        """The next ``times`` status calls answer this instead of the truth."""
        with self._lock:
            for _ in range(times):
                self._script.append((status, body or {"status": status}, headers or {}))

    def storm(self, seconds: float, status: int, body: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None) -> None:
        """For the next ``seconds``, every status call answers this, whatever its token —
        as LinkedIn does while it refuses an application or throttles it."""
        with self._lock:
            self._storm = (self.clock() + seconds,
                           (status, body or {"status": status}, headers or {}))

    def storming(self) -> bool:
        with self._lock:
            return self._storm is not None and self.clock() < self._storm[0]

    def script_token(self, status: int = 200, delay_seconds: float = 0.0, times: int = 1
                     ) -> None:
        """The next ``times`` token requests wait ``delay_seconds``, then fail with ``status``
        (200: answer normally after the delay)."""
        with self._lock:
            for _ in range(times):
                self._token_script.append((status, delay_seconds))

    def force_faults(self, kinds: list[str]) -> None:
        """The next status calls play these faults, one each, before any random draw —
        so a run that must see every kind does not depend on the dice."""
        unknown = set(kinds) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULTS}")
        with self._lock:
            self._forced_faults.extend(kinds)

    def pick_fault(self) -> str | None:
        """A fault for this call: a forced one if any is left, else drawn by the configured
        rates; None for an honest answer."""
        with self._lock:
            if self._forced_faults:
                kind = self._forced_faults.popleft()
                self.faults[kind] = self.faults.get(kind, 0) + 1
                return kind
            draw = self._random.random()
            for kind, rate in self.config.fault_rates.items():
                if draw < rate:
                    self.faults[kind] = self.faults.get(kind, 0) + 1
                    return kind
                draw -= rate
            return None

    def revoke(self, authorization: str | None) -> None:
        """The presented token stops working now, long before its expiry."""
        token = (authorization or "").removeprefix("Bearer ").strip()
        with self._lock:
            if token in self._tokens:
                self._tokens[token] = self.clock() - 1

    def hold(self, external_id: str) -> None:
        """Tasks of this job (present and future) stay IN_PROGRESS."""
        with self._lock:
            self._held_jobs.add(external_id)
            for task in self._tasks.values():
                if task.external_id == external_id:
                    task.held = True

    def expire_tokens(self) -> None:
        """Every token issued so far is expired from now on."""
        with self._lock:
            now = self.clock()
            self._tokens = {token: min(at, now - 1) for token, at in self._tokens.items()}

    def status_calls(self) -> list[CallRecord]:
        with self._lock:
            return [c for c in self.calls if c.path.endswith("simpleJobPostingTasks")]

    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._tokens)

    def counts(self) -> dict[str, int]:
        """Tasks created, elements refused, posting calls answered."""
        with self._lock:
            posts = sum(1 for c in self.calls if c.path == "/v2/simpleJobPostings")
            return {"tasks": len(self._tasks), "refused": self.refused_elements, "posts": posts}

    def tasks_snapshot(self) -> dict[str, SandboxTask]:
        with self._lock:
            return dict(self._tasks)

    def task(self, urn: str) -> SandboxTask:
        with self._lock:
            return self._tasks[urn]

    # ----- token endpoint ----------------------------------------------------------

    def issue_token(self, form: dict[str, list[str]]) -> Response:
        with self._lock:
            self.token_requests += 1
            self._log("/oauth/v2/accessToken", 0)
            status, delay = self._token_script.popleft() if self._token_script else (200, 0.0)
        if delay:
            time.sleep(delay)  # outside the lock: a slow token endpoint stalls nobody else
        if status != 200:
            return status, {"error": "server_error", "error_description": "scripted"}, {}
        with self._lock:
            def one(name: str) -> str:
                return (form.get(name) or [""])[0]
            if one("grant_type") != "client_credentials":
                return 400, {"error": "invalid_request",
                             "error_description": "grant_type must be client_credentials"}, {}
            if (one("client_id"), one("client_secret")) != (self.config.client_id,
                                                             self.config.client_secret):
                return 401, {"error": "invalid_client_id",
                             "error_description": "The passed in client_id is invalid"}, {}
            token = secrets.token_urlsafe(32)
            self._tokens[token] = self.clock() + self.config.token_lifetime_seconds
            advertised = self.config.advertised_expires_in_seconds
            expires_in = int(self.config.token_lifetime_seconds if advertised is None
                             else advertised)
            shown: Any = str(expires_in) if self.config.expires_in_as_string else expires_in
            return 200, {"access_token": token, "expires_in": shown}, {}

    def _auth_problem(self, authorization: str | None) -> Response | None:
        token = (authorization or "").removeprefix("Bearer ").strip()
        expires_at = self._tokens.get(token)
        if expires_at is None:
            return 401, {"serviceErrorCode": 65600, "message": "Invalid access token",
                         "status": 401}, {}
        if self.clock() >= expires_at:
            return 401, {"serviceErrorCode": 65602,
                         "message": "The token used in the request has expired",
                         "status": 401}, {}
        return None

    def _log(self, path: str, status: int, query: str = "") -> None:
        self.calls.append(CallRecord(self.clock(), path, status, query))

    # ----- task status -------------------------------------------------------------

    def task_status(self, raw_query: str, authorization: str | None) -> Response:
        with self._lock:
            answer = self._task_status(raw_query, authorization)
            self._log("/v2/simpleJobPostingTasks", answer[0], raw_query)
            return answer

    def _stormed(self) -> Response | None:
        if self._storm is not None and self.clock() < self._storm[0]:
            return self._storm[1]
        self._storm = None
        return None

    def _task_status(self, raw_query: str, authorization: str | None) -> Response:
        stormed = self._stormed()
        if stormed:
            return stormed
        problem = self._auth_problem(authorization)
        if problem:
            return problem
        if self._script:
            return self._script.popleft()
        if len(raw_query.encode()) > self.config.max_query_bytes:
            return 414, {"message": "Request-URI Too Long", "status": 414}, {}
        params = parse_qs(raw_query, keep_blank_values=True)
        ids = params.pop("ids", [])
        if params or not ids or not all(is_task_urn(i) for i in ids):
            return 400, {"message": "Batch key parameter value is invalid", "status": 400}, {}
        now = self.clock()
        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for urn in ids:
            task = self._tasks.get(urn)
            if task is None:
                errors[urn] = {"status": 404, "message": f"Task {urn} not found"}
                continue
            if task.first_checked_at is None:
                task.first_checked_at = now
                if self.config.in_progress_from_first_check and task.wait_seconds:
                    task.ready_at = now + task.wait_seconds
            results[urn] = self._view(task, now)
        return 200, {"results": results, "statuses": {}, "errors": errors}, {}

    @staticmethod
    def _view(task: SandboxTask, now: float) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": task.urn, "externalJobPostingId": task.external_id}
        if task.location is not None:
            entry["location"] = task.location
        if task.held or now < task.ready_at:
            entry["status"] = "IN_PROGRESS"
        else:
            entry.update(task.final)
        return entry

    # ----- posting -----------------------------------------------------------------

    def post_jobs(self, body: Any, authorization: str | None, restli_method: str | None
                  ) -> Response:
        with self._lock:
            answer = self._post_jobs(body, authorization, restli_method)
            self._log("/v2/simpleJobPostings", answer[0])
            return answer

    def _post_jobs(self, body: Any, authorization: str | None, restli_method: str | None
                   ) -> Response:
        problem = self._auth_problem(authorization)
        if problem:
            return problem
        if restli_method != "batch_create":
            return 403, {"message": "x-restli-method: batch_create is required",
                         "status": 403}, {}
        elements = body.get("elements") if isinstance(body, dict) else None
        if not isinstance(elements, list) or not elements:
            return 400, {"message": "body must be {\"elements\": [...]}", "status": 400}, {}
        if len(elements) > self.config.max_elements:
            return 400, {"message": f"at most {self.config.max_elements} elements per call",
                         "status": 400}, {}
        ids = [e.get("externalJobPostingId") for e in elements if isinstance(e, dict)]
        if len(ids) != len(set(ids)):
            return 400, {"message": "duplicate externalJobPostingId in one request",
                         "status": 400}, {}
        answers: list[dict[str, Any]] = []
        for element in elements:
            answers.extend(self._post_one(element))
        return 200, {"elements": answers}, {}

    def _refuse(self, element: Any) -> str | None:
        if not isinstance(element, dict):
            return "ERROR :: / :: element must be an object"
        operation = element.get("jobPostingOperationType")
        required = REQUIRED_FOR_EXISTING if operation in ("RENEW", "CLOSE") else REQUIRED_FIELDS
        for name in required:
            if element.get(name) in (None, "", []):
                return f"ERROR :: /{name} :: field is required but not found and has no default"
        if operation not in OPERATIONS:
            return f"ERROR :: /jobPostingOperationType :: {operation!r} is not one of {OPERATIONS}"
        if len(str(element.get("title", ""))) > 200:
            return "ERROR :: /title :: length must be at most 200 characters"
        if len(str(element.get("description", ""))) > 25_000:
            return "ERROR :: /description :: length must be at most 25000 characters"
        if len(_locations(element)) > self.config.max_locations:
            return (f"ERROR :: /alternateLocations :: more than {self.config.max_locations} "
                    "locations in all")
        return None

    def _post_one(self, element: Any) -> list[dict[str, Any]]:
        refusal = self._refuse(element)
        if refusal:
            self.refused_elements += 1
            return [{"status": 422, "error": {"message": refusal, "status": 422}}]
        answers = []
        for location, final in self._decide(element):
            urn = f"urn:li:simpleJobPostingTask:{uuid.uuid4()}"
            wait = 0.0
            if self._random.random() < self.config.in_progress_share:
                wait = self.config.in_progress_seconds + self._random.uniform(
                    0, self.config.in_progress_jitter_seconds)
            external_id = element["externalJobPostingId"]
            self._tasks[urn] = SandboxTask(
                urn=urn, external_id=external_id, operation=element["jobPostingOperationType"],
                location=location, final=final, ready_at=self.clock() + wait,
                held=external_id in self._held_jobs, wait_seconds=wait,
            )
            answers.append({"id": urn, "status": 202,
                            "location": "/simpleJobPostings/" + urn.replace(":", "%3A")})
        return answers

    def _decide(self, element: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
        """(location, final task fields) per task; applies the operation to the job."""
        external_id = element["externalJobPostingId"]
        operation = element["jobPostingOperationType"]
        job = self._jobs.get(external_id)
        partner = element.get("integrationContext", "urn:li:organization:0")
        dropped = f"Job {{partner={partner}, partnerJobCode={external_id}}} was dropped: true"
        failure = None
        if operation in ("CREATE", "UPDATE") and len(str(element["description"])) < 100:
            failure = (f"{dropped} Invalid Field: /description; Drop Message: "
                       "The description length should be at least 100 characters")
        if operation == "CREATE" and job is not None and job.live:
            failure = (CLIENT_ERROR + "Trying to create a job with same partnerIdentifier "
                       "already exists. It is duplicate creation request for a basic job or a "
                       "non-draft premium job. Dropping the duplicate job posting creation "
                       f"request. LinkedIn job id: {job.job_posting.rsplit(':', 1)[-1]}, "
                       f"externalJobPostingId: {external_id}")
        elif operation == "UPDATE" and (job is None or not job.live):
            failure = (CLIENT_ERROR + "Operation type UPDATE is not allowed for a non-existing "
                       f"job of partner urn {partner}, partner job code {external_id}")
        elif operation in ("RENEW", "CLOSE") and (job is None or not job.live):
            failure = (CLIENT_ERROR + f"Operation type {operation} is not allowed for a "
                       "non-existing job")
        migrating = partner in self.config.migrating_organizations
        locations: list[str | None] = list(_locations(element)) or [None]
        decided: list[tuple[str | None, dict[str, Any]]] = []
        for location in locations:
            message = failure
            if message is None and location in self.config.unknown_locations:
                message = (f"{dropped}\n\nInvalid Field: /city; \nInvalid Field: /postalCode; "
                           "\nInvalid Field: /state; \nInvalid Field: /geoLocation; ")
            decided.append((location, self._final(migrating, message, job, external_id)))
        if failure is None:
            self._apply(operation, external_id, job, decided)
        return decided

    def _final(self, migrating: bool, message: str | None, job: _Job | None,
               external_id: str) -> dict[str, Any]:
        if migrating:
            # Undocumented: whether PROCESSED carries a jobPosting. The sandbox leaves it out.
            return {"status": "PROCESSED", **({"errorMessage": message} if message else {})}
        if message:
            return {"status": "FAILED", "errorMessage": message}
        posting = job.job_posting if job else f"urn:li:jobPosting:{self._random.randrange(10**9)}"
        return {"status": "SUCCEEDED", "jobPosting": posting}

    def _apply(self, operation: str, external_id: str, job: _Job | None,
               decided: list[tuple[str | None, dict[str, Any]]]) -> None:
        if operation == "CREATE":
            posting = next((f.get("jobPosting") for _, f in decided if f.get("jobPosting")),
                           None)
            self._jobs[external_id] = _Job(live=True, job_posting=posting or
                                           f"urn:li:jobPosting:{self._random.randrange(10**9)}")
        elif operation == "CLOSE" and job is not None:
            job.live = False


def _locations(element: dict[str, Any]) -> list[str]:
    main = element.get("location")
    alternates = element.get("alternateLocations") or []
    return ([main] if main else []) + [a for a in alternates if isinstance(a, str)]
