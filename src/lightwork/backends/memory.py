"""An in-memory backend for tests: it records what is offloaded and can run it inline.

The offload bridge's counterpart of httpx's ``MockTransport``: the same contract as a real
engine, so an app's tests can check what it offloads, run the jobs in-process, and even
play an engine outage (``backend.available = False``) to see jobs go to the outbox.
"""

from __future__ import annotations

import json
import traceback
from typing import Final

from .._offload._backend import Capabilities, JobSnapshot, JobStatus, OffloadBackend, Submission
from .._offload._exceptions import BackendUnavailableError
from .._offload._registry import lookup

__all__ = ["MemoryBackend"]

_UNKNOWN: Final = JobSnapshot(JobStatus.UNKNOWN)
_EVERYTHING: Final = Capabilities(
    dedup=True, delay=True, priority=True, status=True, result=True, cancel=True, remote=True
)


class MemoryBackend(OffloadBackend):
    """Record offloaded jobs in memory and, if asked, run them in this process.

    Args:
        run: run each job as soon as it is submitted (sync jobs in a thread, async ones
            on the loop), so its result is ready once the hand-off task has ended;
            ``False`` (default) only records it, for :meth:`run_queued` to run later.
        capabilities: what this pretend engine claims to do (default: everything, and no
            engine options); narrow it to test an app against a smaller engine.

    Attributes:
        submissions: every job taken, in order, as the engine received it.
        available: set to ``False`` to play an unreachable engine: ``submit`` then raises
            ``BackendUnavailableError`` and jobs go to the outbox.

    Example:
        ```python
        backend = MemoryBackend(run=True)
        app = make_app(Scheduler(offload=Offloader(backend, outbox=None)))
        client.post("/images", json={"path": "cat.png"})
        lightwork_tasks.wait()
        assert [s.name for s in backend.submissions] == ["resize-image"]
        ```
    """

    def __init__(self, *, run: bool = False, capabilities: Capabilities = _EVERYTHING) -> None:
        self.capabilities = capabilities
        self.run = run
        self.available = True
        self.submissions: list[Submission] = []
        self._jobs: dict[str, JobSnapshot] = {}

    @property
    def destination(self) -> str:
        """Always ``"memory"``."""
        return "memory"

    def __repr__(self) -> str:
        return f"<MemoryBackend submissions={len(self.submissions)} available={self.available}>"

    async def submit(self, submission: Submission) -> None:
        """Record the job, and run it now if ``run`` is set."""
        if not self.available:
            raise BackendUnavailableError("the MemoryBackend plays an unreachable engine")
        if self.capabilities.dedup and submission.job_id in self._jobs:
            return
        self.submissions.append(submission)
        self._jobs[submission.job_id] = JobSnapshot(JobStatus.QUEUED)
        if self.run:
            await self._run(submission)

    async def run_queued(self) -> int:
        """Run every job still queued, in order; return how many ran."""
        queued = [s for s in self.submissions if self._jobs[s.job_id].status is JobStatus.QUEUED]
        for submission in queued:
            await self._run(submission)
        return len(queued)

    async def inspect(self, job_id: str) -> JobSnapshot:
        """Return what is known of the job."""
        return self._jobs.get(job_id, _UNKNOWN)

    async def cancel(self, job_id: str) -> bool:
        """Cancel a job that has not run yet."""
        if self._jobs.get(job_id, _UNKNOWN).status is not JobStatus.QUEUED:
            return False
        self._jobs[job_id] = JobSnapshot(JobStatus.CANCELLED)
        return True

    async def _run(self, submission: Submission) -> None:
        job_id = submission.job_id
        self._jobs[job_id] = JobSnapshot(JobStatus.RUNNING)
        try:
            registration = lookup(submission.name)
            value = await registration.arun(submission.args, submission.kwargs, job_id)
            # As through a real engine: the result comes back as JSON would carry it.
            result = json.loads(json.dumps(value, allow_nan=False))
        except Exception:  # noqa: BLE001 -- the job's failure is its outcome
            self._jobs[job_id] = JobSnapshot(JobStatus.FAILED, error=traceback.format_exc())
        else:
            self._jobs[job_id] = JobSnapshot(JobStatus.COMPLETED, result)
