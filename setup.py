"""Build lightwork with its hot path compiled by mypyc, or as pure Python when that fails.

The compiled modules are the same ``.py`` files, type-checked by mypy; each ``.so`` sits
beside its source, which ``LIGHTWORK_NO_EXTENSIONS=1`` makes Python import instead (see
``lightwork/_extensions.py``). Set at build time, that variable skips compiling altogether.
A failed compile never breaks the install: it says why and leaves the pure-Python package.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

from setuptools import Distribution, Extension, setup
from setuptools.command.build_ext import build_ext

SOURCE = Path("src")

# What every task, step and request goes through. The rest stays interpreted: what runs once
# per app or per job (the offload bridge, the status page, the integrations), what takes a
# user's arguments (``@task``: a compiled function checks their types first, in mypyc's
# words, not lightwork's), and every coroutine (``_core/_awaiting.py`` says why; so the
# middleware, one coroutine per request, is interpreted too).
COMPILED = [
    "lightwork/_core/_admission.py",
    "lightwork/_core/_deadlines.py",
    "lightwork/_core/_definitions.py",
    "lightwork/_core/_handle.py",
    "lightwork/_core/_lifecycle.py",
    "lightwork/_core/_monitor.py",
    "lightwork/_core/_options.py",
    "lightwork/_core/_reporting.py",
    "lightwork/_core/_scheduler.py",
    "lightwork/_core/_shutdown.py",
    "lightwork/_core/_source.py",
    "lightwork/_core/_stats.py",
    "lightwork/_asgi/_background.py",
    "lightwork/_asgi/_context.py",
    "lightwork/_asgi/_middleware.py",
    "lightwork/_asgi/_serving.py",
    "lightwork/_asgi/_response.py",
    "lightwork/_offload/_scheduler.py",
]


def _skip_reason() -> str | None:
    if os.environ.get("LIGHTWORK_NO_EXTENSIONS"):
        return "LIGHTWORK_NO_EXTENSIONS is set"
    if sys.implementation.name != "cpython":
        return f"mypyc compiles for CPython only, not {sys.implementation.name}"
    return None


class CompiledDistribution(Distribution):
    """A distribution whose extensions are known only once ``build_ext`` runs.

    Running mypy on the core takes a while: not worth it for the metadata that pip asks
    for first, only for the build itself. ``build_ext`` always runs, if only to say why
    the core is not compiled.
    """

    def has_ext_modules(self) -> bool:
        return True


class OptionalBuildExt(build_ext):
    """Compile the core with mypyc; on any failure, say so and install pure Python."""

    def finalize_options(self) -> None:
        self.pure_reason = _skip_reason()
        if self.pure_reason is None:
            try:
                self.distribution.ext_modules = _mypyc_extensions()
            except (Exception, SystemExit) as exc:  # noqa: BLE001 -- mypyc exits on errors
                self.pure_reason = _failure(exc)
        super().finalize_options()

    def run(self) -> None:
        if self.pure_reason is None:
            try:
                super().run()
            except Exception as exc:  # noqa: BLE001 -- no compiler, no headers, a C error
                self.pure_reason = _failure(exc)
                for output in self.get_outputs():  # no compiled half-core left behind
                    Path(output).unlink(missing_ok=True)
        if self.pure_reason is not None:
            if self.inplace or getattr(self, "editable_mode", False):
                # An earlier build's modules would shadow the sources they were made from.
                for stale in SOURCE.rglob(f"*{sysconfig.get_config_var('EXT_SUFFIX')}"):
                    stale.unlink()
            print(
                f"lightwork: installing the pure-Python core, not the compiled one: "
                f"{self.pure_reason}. It behaves the same, at a higher cost per task.",
                file=sys.stderr,
            )


def _mypyc_extensions() -> list[Extension]:
    from mypyc.build import mypycify  # noqa: PLC0415 -- only a build needs mypy

    # Given from the root, mypyc names the modules lightwork.* (src/ has no __init__.py).
    return mypycify([str(SOURCE / m) for m in COMPILED], opt_level="3", group_name="lightwork")


def _failure(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return "mypyc found the errors printed above"
    message = str(exc).rstrip(".")  # a compiler's command line can run to a screenful
    return f"{type(exc).__name__}: {message[:300]}{'...' if len(message) > 300 else ''}"


setup(
    distclass=CompiledDistribution,
    cmdclass={"build_ext": OptionalBuildExt},
    package_dir={"": str(SOURCE)},
)
