"""The SAQ worker: ``saq examples.offload_saq.worker.settings``.

It runs the ``@offloadable`` jobs of ``jobs.py`` under their names. Add ``--workers 4`` to
run four worker processes (CPU-bound jobs need processes, not more concurrency).
"""

from __future__ import annotations

import os

from lightwork.backends.saq import worker_settings

from . import jobs  # noqa: F401 -- importing the module registers its jobs

settings = worker_settings(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
