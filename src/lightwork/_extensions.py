"""Whether lightwork runs its compiled core, and ``LIGHTWORK_NO_EXTENSIONS=1`` to refuse it.

The build compiles some modules with mypyc and leaves each ``.so`` beside the ``.py`` it was
made from; Python's import prefers the ``.so``. With the variable set, a finder placed first
on ``sys.meta_path`` hands out the ``.py`` of every lightwork module instead, before any of
them is imported: the same package, run as plain Python (to debug, or to compare).

Not compiled itself: it must run before the compiled modules load.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

_PACKAGE = __name__.rpartition(".")[0]


class SourceFinder:
    """Find lightwork's modules as their ``.py`` source, never as compiled extensions."""

    @staticmethod
    def find_spec(
        name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not name.startswith(f"{_PACKAGE}.") or path is None:
            return None
        leaf = name.rpartition(".")[2]
        for folder in path:
            source = Path(folder, f"{leaf}.py")
            if source.is_file():
                return importlib.util.spec_from_file_location(name, source)
        return None  # a package, or not ours to find: the usual finders look


def is_compiled(module: ModuleType) -> bool:
    """Tell whether *module* runs as a compiled extension rather than as Python source."""
    loader = getattr(module, "__loader__", None)
    return isinstance(loader, importlib.machinery.ExtensionFileLoader)


if os.environ.get("LIGHTWORK_NO_EXTENSIONS") and SourceFinder not in sys.meta_path:
    sys.meta_path.insert(0, SourceFinder)
