"""What the figures were measured on: they mean little without it."""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import subprocess
from importlib import metadata
from typing import Final

PACKAGES: Final = ("lightwork", "starlette", "anyio", "aiojobs", "uvloop", "uvicorn", "httptools")


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
        "wrk": _wrk_version(),
    }
