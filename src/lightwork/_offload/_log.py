"""Log event names of the offload bridge, defined once; they go to the ``lightwork`` logger.

Every offloaded job's hand-off ends in one of: ``offload_enqueued`` (the engine took it;
debug level, as routine as a task's completion), ``offload_deferred`` (kept in the outbox,
with the reason; a warning, followed later by ``offload_enqueued`` or ``offload_failed``) or
``offload_failed`` (given up, an error; moved to the dead-letter table when there is an
outbox). Job arguments are never logged.
"""

from __future__ import annotations

from typing import Final

OFFLOAD_ENQUEUED: Final = "offload_enqueued"
OFFLOAD_DEFERRED: Final = "offload_deferred"
OFFLOAD_FAILED: Final = "offload_failed"
OUTBOX_REPLAYED: Final = "offload_outbox_replayed"
"""At start: jobs an earlier run left in the outbox are being delivered."""
OUTBOX_RETRY_FAILED: Final = "offload_outbox_retry_failed"
"""A delivery round found the engine still unreachable; the due jobs wait longer."""
DEAD_LETTERS_REQUEUED: Final = "offload_dead_letters_requeued"
BACKEND_CLOSE_FAILED: Final = "offload_backend_close_failed"

# The local process-pool backend is its own worker, so it reports its jobs' ends too.
JOB_FAILED: Final = "offload_job_failed"
JOB_TIMED_OUT: Final = "offload_job_timed_out"
JOB_CANCELLED: Final = "offload_job_cancelled"
