"""jobops' Celery tasks, all named ``jobops.*`` and routed to JOBOPS_QUEUE."""

from tasks.release import release_held
from tasks.scheduling import schedule_verification
from tasks.verification import verify_job_operation

__all__ = ["release_held", "schedule_verification", "verify_job_operation"]
