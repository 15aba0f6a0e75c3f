"""lightwork with Celery: a Starlette app sends CPU-heavy jobs to Celery workers (README.md)."""
