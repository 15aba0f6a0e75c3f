"""What the figures were measured on: they mean little without it."""

from __future__ import annotations

import datetime
import importlib.util
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Final

PACKAGES: Final = (
    "lightwork", "starlette", "anyio", "aiojobs", "uvloop", "uvicorn", "httptools", "structlog",
    "saq", "celery", "redis",
)  # fmt: skip


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _wrk_version() -> str | None:
    if not shutil.which("wrk"):
        return None
    # wrk prints its version in its usage text and exits with 1 when given no URL.
    usage = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    first = (usage.stdout or usage.stderr).strip().splitlines()
    return first[0] if first else "wrk"


def _redis_server_version() -> str | None:
    if not shutil.which("redis-server"):
        return None
    answer = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    )
    return answer.stdout.strip() or None


def _lightwork_source() -> str:
    """Where the measured lightwork was imported from, and its commit when that is a checkout."""
    spec = importlib.util.find_spec("lightwork")
    where = str(Path(spec.origin).parent) if spec and spec.origin else "unknown"
    git = shutil.which("git")
    if git is None or not Path(where).is_dir():
        return where
    head = subprocess.run(
        [git, "-C", where, "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    if head.returncode != 0:
        return where
    dirty = subprocess.run(
        [git, "-C", where, "status", "--porcelain", "--", "."],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{where} at {head.stdout.strip()}{' with uncommitted changes' if dirty else ''}"


def describe() -> dict[str, object]:
    """Return the machine, the interpreter and the versions of every contender."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": versions,
        "lightwork_source": _lightwork_source(),
        "wrk": _wrk_version(),
        "redis_server": _redis_server_version(),
    }
