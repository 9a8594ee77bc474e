"""jobops' Celery tasks, all named ``jobops.*`` and routed to JOBOPS_QUEUE."""

from tasks.scheduling import schedule_verification
from tasks.verification import verify_job_operation

__all__ = ["schedule_verification", "verify_job_operation"]
