"""Every Redis key jobops writes, under one ``jobops:`` prefix, and the functions that name
them. The catalogue below says what each holds and for how long:

    jobops:outcome:<task URN>            JSON outcome, written once its callback was sent;
                                         TTL: the task lifespan plus one day. Only for a
                                         well-formed task URN: anything else sent as one
                                         goes under jobops:outcome:invalid:<sha256>
    jobops:outcome:invalid:<sha256>      same, for a value sent as a task URN that is not
                                         a well-formed one (<sha256>: hex digest of it)
    jobops:outcome:refused:<id>:<index>  same, for an element LinkedIn refused at posting
                                         time (no task URN exists); <id> is the
                                         verification id returned by the scheduler
    jobops:job:<externalJobPostingId>:urns
                                         set of the job's task URNs with an outcome record;
                                         TTL: as the outcomes
    jobops:job:<externalJobPostingId>:state
                                         hash: location (and "*", any location) -> JSON of
                                         the outcome that last said whether the job is live
                                         (the most recent operation wins); TTL: as above
    jobops:outcome:job:<digest>          the JOB_COMPLETE summary sent for one job of one
                                         operation (<digest>: of its task URNs)
    jobops:scheduled:<verification id>   "registered" once an idempotent scheduling (one
                                         with an idempotency key, or the
                                         schedule_verification task) registered that
                                         verification, "published" once it sent its
                                         message; TTL: as the outcomes
    jobops:run:<verification id>:<round>
                                         "running:<id>" while one copy of that round's
                                         message (or a run settling it) runs (TTL:
                                         JOBOPS_RUN_LEASE_SECONDS), then "done", or
                                         "done:by:<verification id>" if another
                                         verification's run settled it (TTL: two
                                         visibility timeouts)
    jobops:pending                       sorted set: unfinished verification ids, scored by
                                         when their next round is overdue (epoch s)
    jobops:pending:<verification id>     JSON kwargs of that next round; TTL: the lifespan
    jobops:held                          sorted set: verifications whose next round waits
                                         here instead of as a countdown message of its own
                                         (RabbitMQ broker), scored by when it is due
                                         (epoch s), or by when a release that took it
                                         gives up; moved to jobops:pending once released
                                         (see workers.release)
    jobops:release:<second>              "1": a release message for the verifications due
                                         by that second (epoch s) was sent; TTL: until a
                                         minute after that second
    jobops:pending:urns                  hash: verification id -> its pending URN count
    jobops:stuck                         hash: verification id -> JSON of its failing runs
                                         (failures in a row, first and last time, last
                                         error), removed when a round of it runs through or
                                         it ends; TTL: the lifespan, renewed by each failure
    jobops:queues                        set: the broker queues a verification's message
                                         may wait in (each worker's, at its start, and
                                         each scheduler's); the sweeper searches them
                                         before it takes a round for lost; no TTL
    jobops:sweep:lock                    one sweeper at a time; TTL: the sweep interval
    jobops:sweep:unseen                  hash: overdue verification id -> when (epoch s) a
                                         sweep first found no message of it in the broker;
                                         replaced by every sweep
    jobops:metrics:v2                    hash: Prometheus series -> value, summed over
                                         every process (see jobops.state.metrics); no TTL
    jobops:due                           sorted set: pending task URNs, scored by when
                                         their verification looks next (epoch s)
    jobops:due:owners                    hash: pending task URN -> the verification id
                                         that looks next; no TTL: removed when a run
                                         delivers that URN's outcome (or drops its
                                         verification as poison)
    jobops:status:<task URN>             JSON of LinkedIn's last answer for it, shared by
                                         every run; TTL: a day if terminal, else
                                         JOBOPS_STATUS_FRESH_SECONDS
    jobops:batch:<batch id>              hash of one BATCH callback: signature (JSON of the
                                         Celery signature), seq (counter of its sealed
                                         batches, started at the clock in ms), bytes (JSON
                                         bytes of its open batch's outcomes); <batch id>:
                                         digest of the normalized spec (task, args, kwargs,
                                         options, batch_size, batch_seconds); TTL: as the
                                         outcomes, renewed by every append
    jobops:batch:<batch id>:items        list: JSON outcomes of its open batch, fewer than
                                         batch_size; TTL: as above
    jobops:batched:<batch id>:<record key without jobops:>
                                         "1": that outcome was added to that batch, so a
                                         run that crashed and runs again adds it once; TTL:
                                         as the outcomes
    jobops:batches:open                  sorted set: batch ids with an open batch, scored
                                         by its deadline (first outcome's Redis time in ms
                                         plus batch_seconds)
    jobops:batches:sealed                hash: sealed id (<batch id>:<seq>) -> JSON
                                         {"signature": …, "outcomes": […]}, deleted once
                                         published; no TTL
    jobops:batches:sealed:at             sorted set: sealed ids, scored by when they were
                                         sealed or last claimed for re-sending (Redis ms)
    jobops:token                         hash: access_token, fetched_at_ms, expires_at_ms
                                         (Redis clock); TTL: expires_in minus the refresh
                                         margin, so it is gone when it should be renewed
    jobops:token:lock                    who refreshes the token now; TTL: the lock timeout
    jobops:rate:window                   sorted set of the permits of the last second
                                         (score: Redis time in ms); TTL: two windows
    jobops:rate:blocked_until            Redis time (ms) before which nobody calls LinkedIn
                                         (the breaker's pause, or a probe's hold); TTL: the
                                         pause plus a second
    jobops:rate:breaker                  hash: why status calls are paused fleet-wide
                                         (reason, level: its step, since, until, message,
                                         probe/probe_until: the one call checking whether
                                         LinkedIn answers again); deleted when it does;
                                         TTL: a day past four maximum pauses
    jobops:quota:<UTC day number>        status calls made that UTC day (days since
                                         1970-01-01); TTL: two days
    jobops:clock:offset_ms               test clock: milliseconds added to Redis time, read
                                         only when JOBOPS_ALLOW_CLOCK_OVERRIDE is set
    jobops:enqueued:<task id>            "1": a callback (task id jobops-outcome-… or
                                         jobops-batch-…) was put on its queue; a message
                                         with that id sent again is not queued again (see
                                         workers.broker); in the broker's Redis, TTL: two
                                         visibility timeouts
    jobops:dead-letters                  list, newest first: JSON of each message taken
                                         off a jobops queue that no worker could run
                                         (queue, reason, size, body_base64, truncated,
                                         at: Redis time), at most 1,000 (see
                                         jobops.state.dead_letters); in the broker's Redis
                                         (CELERY_BROKER_URL), no TTL
"""

from __future__ import annotations

import hashlib
import re

from jobops.core.urns import TASK_URN_PREFIX, is_task_urn

# Celery's own keys (the broker queue, unacked messages) live beside these in the same
# database; none of them starts with this prefix.
PREFIX = "jobops:"
TOKEN = f"{PREFIX}token"
TOKEN_LOCK = f"{PREFIX}token:lock"
RATE_WINDOW = f"{PREFIX}rate:window"
BLOCKED_UNTIL = f"{PREFIX}rate:blocked_until"
BREAKER = f"{PREFIX}rate:breaker"
# The rate and quota scripts build the quota key from Redis time, and the batch flush script
# builds batch keys from the ids it finds, so they assume one Redis server (not Redis
# Cluster).
QUOTA_PREFIX = f"{PREFIX}quota:"
CLOCK_OFFSET = f"{PREFIX}clock:offset_ms"
DEAD_LETTERS = f"{PREFIX}dead-letters"
# Task ids of the messages queued at most once (callbacks): each names one outcome or one
# sealed batch, whatever run or retry sends it.
OUTCOME_TASK_ID_PREFIX = "jobops-outcome-"
BATCH_TASK_ID_PREFIX = "jobops-batch-"
ONCE_TASK_ID_PREFIXES = (OUTCOME_TASK_ID_PREFIX, BATCH_TASK_ID_PREFIX)
PENDING = f"{PREFIX}pending"
HELD = f"{PREFIX}held"
SWEEP_LOCK = f"{PREFIX}sweep:lock"
SWEEP_UNSEEN = f"{PREFIX}sweep:unseen"
QUEUES = f"{PREFIX}queues"
STUCK = f"{PREFIX}stuck"
PENDING_URNS = f"{PREFIX}pending:urns"
# v2: latency buckets stored per bucket, cumulated when rendered.
METRICS = f"{PREFIX}metrics:v2"
DUE = f"{PREFIX}due"
DUE_OWNERS = f"{PREFIX}due:owners"
BATCHES_OPEN = f"{PREFIX}batches:open"
BATCHES_SEALED = f"{PREFIX}batches:sealed"
BATCHES_SEALED_AT = f"{PREFIX}batches:sealed:at"
# SCAN patterns: every task URN's outcome record, every pending round's arguments.
URN_OUTCOMES_PATTERN = f"{PREFIX}outcome:{TASK_URN_PREFIX}*"
PENDING_ARGS_PATTERN = f"{PREFIX}pending:*"


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def _id_part(verification_id: str) -> str:
    """A task id as it may appear in a key: a canonical UUID as it is, else hashed.

    A verification id is a task id, which whoever sends a task by name chooses: one that is
    not a canonical UUID (jobops' own and Celery's are) appears as sha256:<hex digest>
    instead, so no crafted id lands on another key (``jobops:pending:urns``, say).
    """
    if _UUID.fullmatch(verification_id):
        return verification_id
    return f"sha256:{_sha256(verification_id)}"


def outcome_key(task_urn: str) -> str:
    if is_task_urn(task_urn):
        return f"{PREFIX}outcome:{task_urn}"
    return f"{PREFIX}outcome:invalid:{_sha256(task_urn)}"


def refused_outcome_key(verification_id: str, element_index: int) -> str:
    return f"{PREFIX}outcome:refused:{verification_id}:{element_index}"


def quota_key(utc_day: int) -> str:
    return f"{QUOTA_PREFIX}{utc_day}"


def job_index_key(external_job_posting_id: str) -> str:
    return f"{PREFIX}job:{external_job_posting_id}:urns"


def job_state_key(external_job_posting_id: str) -> str:
    return f"{PREFIX}job:{external_job_posting_id}:state"


def job_summary_key(task_urns: list[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(task_urns)).encode()).hexdigest()[:32]
    return f"{PREFIX}outcome:job:{digest}"


def scheduled_key(verification_id: str) -> str:
    return f"{PREFIX}scheduled:{_id_part(verification_id)}"


def release_key(second: int) -> str:
    return f"{PREFIX}release:{second}"


def run_key(verification_id: str, poll_round: int) -> str:
    return f"{PREFIX}run:{_id_part(verification_id)}:{poll_round}"


def pending_args_key(verification_id: str) -> str:
    return f"{PREFIX}pending:{_id_part(verification_id)}"


def status_key(task_urn: str) -> str:
    return f"{PREFIX}status:{task_urn}"


def batch_key(batch_id: str) -> str:
    return f"{PREFIX}batch:{batch_id}"


def batch_items_key(batch_id: str) -> str:
    return f"{batch_key(batch_id)}:items"


def batched_key(batch_id: str, record_key: str) -> str:
    return f"{PREFIX}batched:{batch_id}:{record_key.removeprefix(PREFIX)}"


def enqueued_key(task_id: str) -> str:
    return f"{PREFIX}enqueued:{task_id}"
