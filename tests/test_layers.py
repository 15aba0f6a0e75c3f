"""The package's layers: every import points down a layer, and no imports go round in a circle.

Read from the source with ``ast``, so that imports under ``TYPE_CHECKING`` and inside functions
count as much as those at the top of a module: a circle of type-only imports is still a
circle for a reader. The layers, lowest first, are in ``LAYERS``; ARCHITECTURE.md explains them.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

import lightwork

PACKAGE = Path(lightwork.__file__).parent

LAYERS: dict[str, tuple[str, ...]] = {
    "core": ("lightwork._core", "lightwork._version"),
    "offload": ("lightwork._offload", "lightwork.backends"),
    "asgi": ("lightwork._asgi", "lightwork.fastapi"),
    "extras": (
        "lightwork.otel",
        "lightwork.prometheus",
        "lightwork.status",
        "lightwork.testing",
        "lightwork._pytest_plugin",
    ),
    "root": ("lightwork",),
}
"""Each layer's modules, by name prefix; a module belongs to the first layer that claims it."""

_ORDER = list(LAYERS)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer_of(module: str) -> str:
    for layer, prefixes in LAYERS.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return layer
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")


def _resolve(module: str, *, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """Return the lightwork modules that one ``from ... import ...`` statement reaches."""
    if node.level:
        base = module.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    if not (target == "lightwork" or target.startswith("lightwork.")):
        return []
    reached = []
    for alias in node.names:  # `from . import _logging` reaches a module, not the package
        candidate = f"{target}.{alias.name}"
        if candidate in _modules():
            reached.append(candidate)
        else:
            reached.append(target)
    return reached


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _edges() -> dict[str, dict[str, int]]:
    """Map each module to the lightwork modules it imports, with the line of each import."""
    edges: dict[str, dict[str, int]] = {}
    for module, path in _modules().items():
        targets = edges.setdefault(module, {})
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                reached = _resolve(module, is_package=path.name == "__init__.py", node=node)
            elif isinstance(node, ast.Import):
                reached = [a.name for a in node.names if a.name.startswith("lightwork")]
            else:
                continue
            for target in reached:
                if target != module:
                    targets.setdefault(target, node.lineno)
    return edges


def _cycle(edges: dict[str, dict[str, int]]) -> list[str] | None:
    """Return one circle of imports, as a list of modules that starts and ends alike."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(edges.get(module, {})):
            if (found := visit(target)) is not None:
                return found
        path.pop()
        done.add(module)
        return None

    for module in sorted(edges):
        if (found := visit(module)) is not None:
            return found
    return None


def test_every_module_is_in_a_layer() -> None:
    for module in _modules():
        _layer_of(module)


def test_no_import_points_up_a_layer() -> None:
    upward = [
        f"{module}:{line} imports {target} ({_layer_of(module)} -> {_layer_of(target)})"
        for module, targets in _edges().items()
        for target, line in targets.items()
        if _ORDER.index(_layer_of(target)) > _ORDER.index(_layer_of(module))
    ]
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def test_no_imports_go_round_in_a_circle() -> None:
    edges = _edges()
    circle = _cycle(edges)
    assert circle is None, (
        "a circle of imports: "
        + " -> ".join(f"{a} (line {edges[a][b]})" for a, b in itertools.pairwise(circle))
        + f" -> {circle[-1]}"
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from ._handle import TaskHandle", "lightwork._core._handle"),
        ("from .. import _offload", "lightwork._offload"),
        ("from .._core._handle import TaskHandle", "lightwork._core._handle"),
        ("from lightwork._core import _logging", "lightwork._core._logging"),
    ],
)
def test_imports_are_resolved_to_the_module_they_reach(source: str, expected: str) -> None:
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _resolve("lightwork._core._scheduler", is_package=False, node=node) == [expected]


def test_a_circle_is_found_and_named() -> None:
    edges = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}
    assert _cycle(edges) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b": 1}, "b": {}}) is None
