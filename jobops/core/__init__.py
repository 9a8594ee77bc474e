"""The rules: URNs, requests, outcomes, cadence, polling; no Redis, Celery, HTTP or settings."""
