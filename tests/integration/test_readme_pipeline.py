"""The README's "Using it from your pipeline" snippets, read from README.md at test time, run
as a pipeline runs them: a Celery app of its own, which never imports jobops, and its worker."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jobops.dev.processes import start_worker, stop, wait_ready
from sandbox import SandboxState
from tests.conftest import ExtraWorkers
from tests.env import SANDBOX_URL, TEST_ENV
from tests.jobs import job, post, task_urns

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Using it from your pipeline"
BATCHED = "### Batched callbacks"
#: The first snippet's last line; the batched-callback snippet is run with it too.
CHAIN = "chain(post_jobs.s(batch), schedule).apply_async()"
BATCH_ENV = "README_PIPELINE_BATCH"

#: What the README leaves to the pipeline ("post_jobs: your POST, its answer", and a
#: ``batch``), put before its first snippet: requests, not jobops, as a pipeline would.
PRELUDE = '''\
# Written by tests/integration/test_readme_pipeline.py before the README's snippet, which
# uses post_jobs and batch in its last line.
import json
import os

import requests
from celery import shared_task

batch = json.loads(os.environ.get({batch_env!r}, "[]"))


@shared_task(name="pipeline.post_jobs", queue={queue!r})
def post_jobs(jobs, operation="CREATE"):
    """POST the jobs to (the sandbox's) LinkedIn; returns its answer."""
    with requests.Session() as session:
        token = session.post({api!r} + "/oauth/v2/accessToken", data={{
            "grant_type": "client_credentials", "client_id": {client_id!r},
            "client_secret": {client_secret!r}}}, timeout=5).json()["access_token"]
        response = session.post(
            {api!r} + "/v2/simpleJobPostings",
            json={{"elements": [{{**job, "jobPostingOperationType": operation}} for job in jobs]}},
            headers={{"Authorization": "Bearer " + token, "x-restli-method": "batch_create"}},
            timeout=5)
    response.raise_for_status()
    return response.json()


'''

#: On the pipeline's processes' path: the proof that nothing there imports the project.
GUARD = '''\
"""Written by tests/integration/test_readme_pipeline.py: the pipeline never imports jobops."""
import importlib.abc
import sys

PROJECT = ("jobops", "workers", "tasks", "settings", "sandbox", "tests")


class NotTheProject(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in PROJECT:
            raise ImportError(f"the README's pipeline imported {name}: it must not need jobops")
        return None


sys.meta_path.insert(0, NotTheProject())
'''


# --- README.md's snippets ------------------------------------------------------------------


def section(text: str, heading: str) -> str:
    """A ``## `` section of the README, from its heading to the next ``## `` heading."""
    start = text.find(f"\n{heading}\n")
    if start < 0:
        raise AssertionError(f"README.md has no {heading!r} heading")
    end = text.find("\n## ", start + 1)
    return text[start:end] if end >= 0 else text[start:]


def python_block(text: str, marker: str, where: str) -> str:
    """The one ```python block of ``text`` that holds ``marker``."""
    blocks = re.findall(r"^```python\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    found = [code for code in blocks if marker in code]
    if len(found) != 1:
        raise AssertionError(f"README.md's {where!r} has {len(found)} python blocks holding "
                             f"{marker!r}, not one: update this test to the README")
    return str(found[0])


def substitute(code: str, old: str, new: str) -> str:
    """``code`` with ``old`` replaced by ``new``; ``old`` must be there exactly once."""
    count = code.count(old)
    if count != 1:
        raise AssertionError(f"a README snippet holds {old!r} {count} times, not once: the "
                             f"README changed; update this test to it. The snippet:\n{code}")
    return code.replace(old, new)


@dataclass(frozen=True)
class Snippets:
    pipeline: str  # the app, its callback, a chain into jobops.schedule_verification
    by_urns: str  # jobops.verify_job_operation sent by name
    batched: str  # a BATCH callback

    @classmethod
    def parse(cls, readme: str) -> Snippets:
        text = section(readme, SECTION)
        head, found, batched = text.partition(f"\n{BATCHED}\n")
        if not found:
            raise AssertionError(f"README.md's {SECTION!r} has no {BATCHED!r}")
        return cls(python_block(head, 'Celery("pipeline"', SECTION),
                   python_block(head, 'app.send_task("jobops.verify_job_operation"', SECTION),
                   python_block(batched, '"BATCH"', BATCHED))

    def pipeline_module(self, broker: str, jobops_queue: str, callback_queue: str) -> str:
        """The first snippet, after what it leaves to the pipeline; its chain is sent when
        the module runs as a script, not when the pipeline's worker imports it."""
        code = substitute(self.pipeline, '"redis://127.0.0.1:6379/0"', repr(broker))
        code = substitute(code, '{"queue": "jobops"}', f"{{'queue': {jobops_queue!r}}}")
        code = substitute(code, f"\n{CHAIN}", f'\nif __name__ == "__main__":\n    {CHAIN}')
        return PRELUDE.format(
            batch_env=BATCH_ENV, queue=callback_queue, api=SANDBOX_URL,
            client_id=TEST_ENV["LINKEDIN_CLIENT_ID"],
            client_secret=TEST_ENV["LINKEDIN_CLIENT_SECRET"]) + code

    def batched_module(self, batch_seconds: int) -> str:
        """The batched-callback snippet on the first snippet's app, chained as it is."""
        code = substitute(self.batched, '"batch_seconds": 10', f'"batch_seconds": {batch_seconds}')
        return ("from readme_pipeline import app, batch, chain, job_outcome, post_jobs\n\n"
                f'{code}\n\nif __name__ == "__main__":\n    {CHAIN}\n')

    def by_urns_script(self, jobops_queue: str, urns: Sequence[str], requested_at: str) -> str:
        code = substitute(self.by_urns, 'queue="jobops"', f"queue={jobops_queue!r}")
        code = substitute(code, "countdown=300", "countdown=1")
        code = substitute(code, '["urn:li:simpleJobPostingTask:07ae37ab-…"]', json.dumps(urns))
        code = substitute(code, '"requested_at": "2026-11-29T10:00:00+00:00"',
                          f'"requested_at": {requested_at!r}')
        return f"from readme_pipeline import app\n\n{code}"


# --- the pipeline, its worker and jobops ---------------------------------------------------


#: What the README's callback prints for an error, "<job> <code> <resolution>", as a log
#: line of the worker (Celery logs what a task prints).
PRINTED = r"(?<![\w-]){job} (?P<code>[A-Z_]+) (?P<resolution>\S.*)$"


@dataclass
class Pipeline:
    directory: Path
    log: Path  # the pipeline worker's
    jobops_log: Path
    jobops_queue: str
    snippets: Snippets

    def run(self, script: str, code: str | None = None,
            jobs: Sequence[dict[str, Any]] = ()) -> None:
        """Run one of the pipeline's scripts (written first if ``code``) as its own process."""
        if code is not None:
            (self.directory / script).write_text(code)
        done = subprocess.run([sys.executable, script], cwd=self.directory,
                              env={**pipeline_env(self.directory), BATCH_ENV: json.dumps(jobs)},
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"{script} failed:\n{done.stderr}"

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def wait(self, what: str, found: Callable[[list[str]], bool],
             timeout_seconds: float = 30) -> list[str]:
        """The pipeline worker's log, once ``found`` says it shows what is awaited."""
        deadline = time.monotonic() + timeout_seconds
        while not found(lines := self.lines()):
            if time.monotonic() > deadline:
                tail = "\n".join(lines[-30:])
                pytest.fail(f"no {what} in the pipeline worker's log after "
                            f"{timeout_seconds} s; its tail:\n{tail}")
            time.sleep(0.1)
        return lines

    def ran(self, task: str, count: int) -> list[str]:
        """The ids of the first ``count`` runs of ``task`` that succeeded."""
        done = re.compile(rf"Task {re.escape(task)}\[([^\]]+)\] succeeded in")
        lines = self.wait(f"{count} runs of {task}",
                          lambda lines: sum(bool(done.search(line)) for line in lines) >= count)
        return [m.group(1) for line in lines if (m := done.search(line))][:count]

    def printed(self, external_id: str) -> list[tuple[str, str]]:
        """(code, resolution) of each error the callback printed for a job."""
        lines = self.lines()
        printed = re.compile(PRINTED.format(job=re.escape(external_id)))
        found = [(m["code"], m["resolution"]) for line in lines if (m := printed.search(line))]
        about = "\n".join(line for line in lines if external_id in line)
        # A worker logs each write() of a task's print as a line of its own: print(a, b, c)
        # makes five (a, " ", b, " ", c), and the job's id ends up without its error.
        assert found, (f"the pipeline worker's log has no line '{external_id} CODE "
                       f"resolution' (what the README's callback prints, printed as one "
                       f"string); its lines with the job:\n{about}")
        return found

    def assert_clean(self) -> None:
        for log_path in (self.log, self.jobops_log):
            bad = [line for line in log_path.read_text(errors="replace").splitlines()
                   if "Received unregistered task" in line or "raised unexpected" in line
                   or "failed; retrying" in line or "ERROR/" in line]
            assert not bad, f"{log_path.name}: {bad[:3]}"


def pipeline_env(directory: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(directory)}


@pytest.fixture
def pipeline(sandbox: SandboxState, redis_server: Callable[..., str],
             tmp_path: Path) -> Iterator[Pipeline]:
    """A jobops worker on a Redis of this test's own (a batch is sent by whichever jobops
    worker seals it, to that worker's JOBOPS_CALLBACK_QUEUE: the session's fleet, on
    another callback queue, must not find it), and the README's pipeline with its worker."""
    snippets = Snippets.parse(README.read_text())
    sandbox.config.in_progress_seconds = 0
    broker = redis_server()
    callback_queue = f"readme-pipeline-{uuid.uuid4().hex[:8]}"
    directory = tmp_path / "pipeline"
    directory.mkdir()
    (directory / "sitecustomize.py").write_text(GUARD)
    refused = subprocess.run([sys.executable, "-c", "import jobops"], cwd=directory,
                             env=pipeline_env(directory), capture_output=True, text=True)
    assert refused.returncode and "must not need jobops" in refused.stderr, refused.stderr
    extra = ExtraWorkers(tmp_path)
    try:
        queue = extra(REDIS_URL=broker, CELERY_BROKER_URL=broker,
                      JOBOPS_CALLBACK_QUEUE=callback_queue)
        (directory / "readme_pipeline.py").write_text(
            snippets.pipeline_module(broker, queue, callback_queue))
        (directory / "readme_batches.py").write_text(snippets.batched_module(batch_seconds=1))
        log = tmp_path / "pipeline.log"
        # The README's two callbacks, and post_jobs, on the pipeline's own queue.
        worker = start_worker("readme_batches", callback_queue, {"PYTHONPATH": str(directory)},
                              log)
        try:
            wait_ready(worker, log)
            yield Pipeline(directory, log, extra.logs(queue)[0], queue, snippets)
        finally:
            stop(worker)
    finally:
        extra.stop_all()


# --- the tests -----------------------------------------------------------------------------


def test_the_chain_into_jobops_prints_each_error_of_a_failed_job(pipeline: Pipeline) -> None:
    good, bad = job(), job(location="Atlantis")  # the sandbox drops jobs in Atlantis
    pipeline.run("readme_pipeline.py", jobs=[good, bad])
    assert len(pipeline.ran("pipeline.post_jobs", 1)) == 1
    callbacks = pipeline.ran("pipeline.job_outcome", 2)  # one per outcome, the good one too
    assert all(task_id.startswith("jobops-outcome-") for task_id in callbacks), callbacks
    printed = pipeline.printed(bad["externalJobPostingId"])
    assert {code for code, _ in printed} == {"INVALID_FIELD"}, printed
    assert all(len(resolution) > 20 for _, resolution in printed), printed
    assert good["externalJobPostingId"] not in pipeline.log.read_text()
    pipeline.assert_clean()


def test_urns_sent_by_name_with_a_countdown_get_their_callbacks(pipeline: Pipeline) -> None:
    existing, unknown = job(), job()
    post([existing], "CREATE")
    urns = task_urns(post([existing, unknown], "UPDATE"))
    assert len(urns) == 2
    now = datetime.now(UTC).isoformat()
    pipeline.run("readme_send.py", pipeline.snippets.by_urns_script(pipeline.jobops_queue, urns,
                                                                    now))
    pipeline.ran("pipeline.job_outcome", 2)
    assert {code for code, _ in pipeline.printed(unknown["externalJobPostingId"])} == \
        {"UPDATE_UNKNOWN_JOB"}
    assert existing["externalJobPostingId"] not in pipeline.log.read_text()
    pipeline.assert_clean()


def test_a_batch_callback_gets_the_outcomes_as_one_list(pipeline: Pipeline) -> None:
    jobs = [job(), job(location="Atlantis"), job()]
    pipeline.run("readme_batches.py", jobs=jobs)
    [batch_id] = pipeline.ran("pipeline.job_outcomes", 1)
    assert batch_id.startswith("jobops-batch-"), batch_id
    sent = [line for line in pipeline.jobops_log.read_text().splitlines()
            if re.search(r"sent batch \S+: \d+ outcomes to pipeline\.job_outcomes", line)]
    assert len(sent) == 1 and ": 3 outcomes to" in sent[0], sent
    log = pipeline.log.read_text()
    assert "Task pipeline.job_outcome[" not in log  # called by job_outcomes, not sent
    assert {code for code, _ in pipeline.printed(jobs[1]["externalJobPostingId"])} == \
        {"INVALID_FIELD"}
    assert not any(j["externalJobPostingId"] in log for j in (jobs[0], jobs[2]))
    pipeline.assert_clean()
