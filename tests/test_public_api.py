"""The public surface: what ``__all__`` promises is really there, and typed."""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import inspect
import os
import sys
from pathlib import Path
from typing import Any

import pytest

import lightwork


@pytest.mark.parametrize("module_name", ["lightwork", "lightwork.fastapi", "lightwork.testing"])
def test_all_names_exist_are_sorted_and_documented(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__all__ == sorted(module.__all__)
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isroutine(value):
            assert _docstring(value), f"{module_name}.{name} has no docstring"


def _docstring(value: Any) -> str | None:
    """Read the docstring of a class or function in its source, as help() and the docs do.

    From the ``.py`` file, not ``__doc__``: mypyc's compiled core keeps no docstrings.
    """
    module = sys.modules[value.__module__]
    source = Path(module.__file__ or "").with_name(f"{module.__name__.rpartition('.')[2]}.py")
    definition = ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
    found = [
        node
        for node in ast.parse(source.read_text()).body
        if isinstance(node, definition) and node.name == value.__name__
    ]
    return ast.get_docstring(found[-1]) if found else None  # the last: after any @overload


def test_every_public_class_and_function_is_exported() -> None:
    exported = set(lightwork.__all__)
    for name, value in vars(lightwork).items():
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value)):
            assert name in exported, f"lightwork.{name} is public but not in __all__"


def test_the_package_is_marked_typed() -> None:
    assert (Path(lightwork.__file__).parent / "py.typed").exists()


def test_every_exception_derives_from_the_root_and_says_when_it_is_raised() -> None:
    errors = [
        v for v in vars(lightwork).values() if inspect.isclass(v) and issubclass(v, Exception)
    ]
    assert errors
    for error in errors:
        assert issubclass(error, lightwork.LightworkError)
        assert (error.__doc__ or "").startswith("Raised "), f"{error.__name__}: say when"
    assert issubclass(lightwork.TaskTimeoutError, TimeoutError)


def test_the_core_runs_compiled_unless_told_not_to() -> None:
    """What CI builds, it runs: compiled by default, pure Python with LIGHTWORK_NO_EXTENSIONS."""
    compiled_modules = [
        name
        for name, module in sys.modules.items()
        if name.startswith("lightwork")
        and isinstance(getattr(module, "__loader__", None), importlib.machinery.ExtensionFileLoader)
    ]
    if os.environ.get("LIGHTWORK_NO_EXTENSIONS"):
        assert not lightwork.compiled
        assert compiled_modules == []
    elif os.environ.get("LIGHTWORK_REQUIRE_COMPILED"):
        assert lightwork.compiled
        assert "lightwork._core._scheduler" in compiled_modules
    assert lightwork.compiled == ("lightwork._offload._scheduler" in compiled_modules)
