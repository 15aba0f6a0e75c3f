"""The public surface: what ``__all__`` promises is really there, and typed."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

import lightwork


@pytest.mark.parametrize("module_name", ["lightwork", "lightwork.fastapi", "lightwork.testing"])
def test_all_names_exist_are_sorted_and_documented(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__all__ == sorted(module.__all__)
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{module_name}.{name} has no docstring"


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
