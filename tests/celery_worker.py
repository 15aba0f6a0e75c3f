"""The Celery worker the Celery tests start: ``celery -A tests.celery_worker worker``."""

from __future__ import annotations

import os

import tests.offload_jobs  # noqa: F401 -- registers the jobs
from lightwork.backends.celery import worker_app

app = worker_app(os.environ["LIGHTWORK_TEST_REDIS_URL"])
