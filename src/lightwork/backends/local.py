"""The local process pool: the embedded default backend, with no server to run.

Each job runs in a worker process of anyio's process pool, under a ``CapacityLimiter`` of
lightwork's own, so CPU-bound work leaves the web server's event loop (and its GIL) alone.
A job that runs past its timeout has its worker process killed; a job whose process dies
fails alone, and the pool starts a fresh process for the next one.

Jobs live in this process's memory only: jobs waiting or running when the app stops are
lost, and results are forgotten at restart (and beyond ``max_results``). Use a real engine
(SAQ, Celery) for jobs that must survive a restart.

The job crosses to the worker as its name and its JSON payload, exactly as it would cross
a network to SAQ or Celery, so a job that works here works there.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, cast

import anyio
import anyio.to_process

from .._core._logging import logger
from .._core._options import check_duration
from .._offload import _log as events
from .._offload._backend import Capabilities, JobSnapshot, JobStatus, OffloadBackend, Submission
from .._offload._registry import lookup

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .._offload._payload import JSONValue

__all__ = ["LocalBackend"]

_UNKNOWN: Final = JobSnapshot(JobStatus.UNKNOWN)


@dataclass(slots=True)
class _LocalJob:
    submission: Submission
    status: JobStatus = JobStatus.QUEUED
    result: JSONValue = None
    error: str | None = None
    task: asyncio.Task[None] | None = None


class LocalBackend(OffloadBackend):
    """Run jobs in a pool of worker processes on this machine; the default backend.

    Args:
        max_workers: how many jobs run at once, each in its own process (default: the
            number of CPUs).
        timeout: seconds a job may run before its worker process is killed and the job
            fails; ``None`` for no limit. A job may set its own with
            ``offload(Job(...), options={"timeout": 60})``. The time counts from when the
            job gets its slot, so it includes starting a fresh worker process (about a
            second) when the pool has no idle one.
        max_results: how many ended jobs to remember for ``status()`` and ``result()``;
            the oldest are forgotten first (their status becomes ``UNKNOWN``).
        drain_timeout: seconds that closing waits for queued and running jobs before it
            kills their processes (each is logged as ``offload_job_cancelled``).

    Example:
        ```python
        scheduler = Scheduler(offload=LocalBackend(max_workers=2, timeout=60))
        ```
    """

    capabilities = Capabilities(
        dedup=True, delay=True, status=True, result=True, cancel=True, remote=False,
        options=frozenset({"timeout"}),
    )  # fmt: skip

    def __init__(
        self,
        *,
        max_workers: int | None = None,
        timeout: float | None = 300.0,
        max_results: int = 10_000,
        drain_timeout: float = 10.0,
    ) -> None:
        workers = max_workers if max_workers is not None else os.cpu_count() or 2
        for option, value in (("max_workers", workers), ("max_results", max_results)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{option} must be a positive integer, not {value!r}")
        check_duration("timeout", timeout)
        check_duration("drain_timeout", drain_timeout, allow_none=False)
        self.max_workers = workers
        self.timeout = timeout
        self.max_results = max_results
        self.drain_timeout = drain_timeout
        self._jobs: dict[str, _LocalJob] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        # Ours decides which job runs; anyio's run_sync wants a limiter too, and gets one
        # just as large, so that it never makes an admitted job wait a second time.
        self._limiter = anyio.CapacityLimiter(workers)
        self._pool_limiter = anyio.CapacityLimiter(workers)

    @property
    def destination(self) -> str:
        """Always ``"local"``: one pool per process."""
        return "local"

    def __repr__(self) -> str:
        running = sum(job.status is JobStatus.RUNNING for job in self._jobs.values())
        return f"<LocalBackend max_workers={self.max_workers} running={running}>"

    async def submit(self, submission: Submission) -> None:
        """Queue the job for a worker process; an id already known is not run again."""
        if submission.job_id in self._jobs:  # the same id runs once, while remembered
            return
        self.check_options(submission.options)
        lookup(submission.name)  # fail now, not in the worker, for a job no one registered
        job = _LocalJob(submission)
        self._jobs[submission.job_id] = job
        job.task = asyncio.get_running_loop().create_task(
            self._run(job), name=f"lightwork local job {submission.name}"
        )

    def check_options(self, options: Mapping[str, JSONValue]) -> None:
        """Refuse a ``timeout`` that is not a positive number of seconds or ``None``."""
        if "timeout" in options:
            check_duration("options['timeout']", options["timeout"])

    async def inspect(self, job_id: str) -> JobSnapshot:
        """Return the job's status, and its result or error once it has ended."""
        job = self._jobs.get(job_id)
        if job is None:
            return _UNKNOWN
        return JobSnapshot(job.status, job.result, job.error)

    async def cancel(self, job_id: str) -> bool:
        """Cancel a queued job, or kill the worker process of a running one."""
        job = self._jobs.get(job_id)
        if job is None or job.status.done or job.task is None:
            return False
        job.status = JobStatus.CANCELLED
        job.task.cancel()
        return True

    async def aclose(self) -> None:
        """Wait up to ``drain_timeout`` for the jobs, then kill what still runs."""
        tasks = [job.task for job in self._jobs.values() if job.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.drain_timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self, job: _LocalJob) -> None:
        submission = job.submission
        fields = {"job": submission.name, "job_id": submission.job_id}
        timeout = cast("float | None", submission.options.get("timeout", self.timeout))
        try:
            if submission.delay:
                await asyncio.sleep(submission.delay)
            async with self._limiter:
                job.status = JobStatus.RUNNING
                async with asyncio.timeout(timeout):
                    reply = await anyio.to_process.run_sync(
                        run_in_worker,
                        lookup(submission.name).module,
                        submission.name,
                        submission.payload,
                        submission.job_id,
                        cancellable=True,  # a cancelled or timed-out job's process is killed
                        limiter=self._pool_limiter,
                    )
            outcome = json.loads(reply)
            if "error" in outcome:
                job.status, job.error = JobStatus.FAILED, outcome["error"]
                logger.error(events.JOB_FAILED, **fields, error=job.error)
            else:
                job.status, job.result = JobStatus.COMPLETED, outcome["result"]
        except TimeoutError:
            job.status = JobStatus.FAILED
            job.error = f"ran past its timeout of {timeout}s: its worker process was killed"
            logger.warning(events.JOB_TIMED_OUT, **fields, timeout_s=timeout)
        except asyncio.CancelledError:
            job.status = JobStatus.CANCELLED
            logger.warning(events.JOB_CANCELLED, **fields)
            raise
        except anyio.BrokenWorkerProcess:
            job.status = JobStatus.FAILED
            job.error = "its worker process died (a crash, os._exit, or out of memory)"
            logger.error(events.JOB_FAILED, **fields, error=job.error)
        except Exception as exc:  # noqa: BLE001 -- e.g. no worker process could start
            job.status = JobStatus.FAILED
            job.error = f"no worker process could run it: {exc!r}"
            logger.error(events.JOB_FAILED, **fields, error=job.error, exc_info=exc)
        finally:
            job.task = None
            self._remember(submission.job_id)

    def _remember(self, job_id: str) -> None:
        self._ended[job_id] = None
        while len(self._ended) > self.max_results:
            forgotten, _ = self._ended.popitem(last=False)
            del self._jobs[forgotten]


def run_in_worker(module: str, name: str, payload: str, job_id: str) -> str:
    """Run a job in a worker process; its outcome goes back as JSON text, never pickled."""
    try:
        importlib.import_module(module)  # registers the job in this process
        arguments = json.loads(payload)
        value = lookup(name).run(arguments["args"], arguments["kwargs"], job_id)
    except BaseException:  # noqa: BLE001 -- the job's end, whatever it is, goes back as text
        return json.dumps({"error": traceback.format_exc()})
    try:
        return json.dumps({"result": value}, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return json.dumps({"error": f"job {name!r} returned a value JSON cannot carry: {exc}"})
