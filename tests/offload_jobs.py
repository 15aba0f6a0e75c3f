"""Jobs for the offload tests: imported by the tests and by every real worker they start."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import lightwork

CPU_JOB_S = 0.2


@lightwork.offloadable("burn-cpu")
def burn_cpu(seconds: float = CPU_JOB_S) -> dict[str, int]:
    """Spend *seconds* of pure-Python CPU time (not wall time), then say which process did."""
    started = time.process_time()
    spins = 0
    while time.process_time() - started < seconds:
        sum(range(1000))
        spins += 1
    return {"pid": os.getpid(), "spins": spins}


@lightwork.offloadable("add")
def add(a: int, b: int = 0) -> int:
    return a + b


@lightwork.offloadable
async def shout(word: str) -> str:
    await asyncio.sleep(0)
    return word.upper()


@lightwork.offloadable("fail")
def fail(message: str) -> None:
    raise ValueError(message)


@lightwork.offloadable("die")
def die() -> None:
    os._exit(3)  # a crash: the worker process ends without a word


@lightwork.offloadable("hang")
def hang(seconds: float) -> None:
    time.sleep(seconds)


@lightwork.offloadable("pid")
def pid() -> int:
    return os.getpid()


@lightwork.offloadable("record")
def record(path: str, token: str) -> str:
    """Append *token* to a file, so a test can count how often each job really ran."""
    with Path(path).open("a") as file:
        file.write(token + "\n")
    return token


@lightwork.offloadable("unjsonable")
def unjsonable() -> object:
    return {1, 2}


@lightwork.offloadable("nap")
def nap(path: str, seconds: float) -> None:
    """Write this worker's pid to *path*, then sleep: a job a test can watch being killed."""
    Path(path).write_text(str(os.getpid()))
    time.sleep(seconds)


@lightwork.offloadable("whoami")
def whoami() -> str | None:
    """Return the id of the job this runs in, as the worker sees it."""
    return lightwork.current_job_id()


@lightwork.offloadable("whoami-async")
async def whoami_async() -> str | None:
    await asyncio.sleep(0)
    return lightwork.current_job_id()
