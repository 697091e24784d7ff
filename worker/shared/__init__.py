"""Redis coordination for the Celery workers (redis, never celery): dedupe, shared fetch."""
