"""Offload backends: the adapter protocol, and the engines lightwork ships with.

- :class:`LocalBackend`: a local process pool, the default (no server; jobs in memory).
- :class:`MemoryBackend`: an in-memory test double.
- ``lightwork.backends.saq.SaqBackend``: SAQ on Redis (``pip install 'lightwork[saq]'``).
- ``lightwork.backends.celery.CeleryBackend``: Celery (``pip install 'lightwork[celery]'``).

To write a backend for another engine, subclass :class:`OffloadBackend`.
"""

from .._offload._backend import (
    Capabilities,
    JobSnapshot,
    JobStatus,
    OffloadBackend,
    Submission,
)
from .._offload._payload import JSONValue
from .local import LocalBackend
from .memory import MemoryBackend

__all__ = [
    "Capabilities",
    "JSONValue",
    "JobSnapshot",
    "JobStatus",
    "LocalBackend",
    "MemoryBackend",
    "OffloadBackend",
    "Submission",
]
