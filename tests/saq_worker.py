"""The SAQ worker the SAQ tests start: ``saq tests.saq_worker.settings``."""

from __future__ import annotations

import os

import tests.offload_jobs  # noqa: F401 -- registers the jobs
from lightwork.backends.saq import worker_settings

# One sweep, at start: SAQ's sweeper can catch a job between its dequeue and its start
# (tobymao/saq#277), so the tests wait for it to pass before they enqueue anything.
settings = worker_settings(
    os.environ["LIGHTWORK_TEST_REDIS_URL"],
    concurrency=4,
    timers={"schedule": 1, "worker_info": 10, "sweep": 3600, "abort": 0.1},
)
