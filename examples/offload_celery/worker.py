"""The Celery worker: ``celery -A examples.offload_celery.worker worker --loglevel=INFO``.

A Celery app that runs the ``@offloadable`` jobs of ``jobs.py`` under their names, with
JSON only (no pickle) and ``task_track_started`` on, so the app can tell running jobs.
"""

from __future__ import annotations

import os

from lightwork.backends.celery import worker_app

from . import jobs  # noqa: F401 -- importing the module registers its jobs

app = worker_app(os.environ.get("BROKER_URL", "redis://127.0.0.1:6379/0"))
