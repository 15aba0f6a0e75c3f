"""The build: a machine that cannot compile the core still gets a working, pure-Python install.

Builds a real wheel with pip, in a copy of the project, with a C compiler that always fails.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_a_failed_compile_installs_the_pure_python_core_and_says_why(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(
        ROOT,
        project,
        ignore=shutil.ignore_patterns(
            ".git", ".venv*", "build", "site", "*.so", "__pycache__", ".*_cache", "results"
        ),
    )
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(wheels), "."],
        cwd=project,
        env={**os.environ, "CC": "false"},  # a compiler that fails on every file
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    assert "lightwork: installing the pure-Python core, not the compiled one" in (
        built.stdout + built.stderr
    )
    [wheel] = wheels.glob("lightwork-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "lightwork/_core/_scheduler.py" in names
    assert not [name for name in names if name.endswith((".so", ".pyd"))]


_WAITING = (ast.AsyncFunctionDef, ast.AsyncFor, ast.AsyncWith, ast.Await, ast.YieldFrom)


def test_the_compiled_modules_hold_no_coroutine_but_the_two_adopted_ones() -> None:
    """Compiled, a coroutine would warn at every cancellation on 3.12+ (see ``_awaiting.py``).

    All but the task driver (``_monitor.drive``) and the middleware's request coroutine
    (``BackgroundMiddleware.__call__``), whose classes get a ``throw()`` of lightwork's.
    """
    setup = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    [compiled] = [
        node.value
        for node in setup.body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "COMPILED"
    ]
    assert isinstance(compiled, ast.List)
    adopted = {
        ("lightwork/_core/_monitor.py", "drive"),
        ("lightwork/_asgi/_middleware.py", "__call__"),
    }
    found: set[tuple[str, str]] = set()
    waits: list[str] = []
    for path in (ast.literal_eval(element) for element in compiled.elts):
        nodes = list(ast.walk(ast.parse((ROOT / "src" / path).read_text(encoding="utf-8"))))
        exempt: set[int] = set()
        for node in nodes:
            if isinstance(node, ast.AsyncFunctionDef) and (path, node.name) in adopted:
                found.add((path, node.name))
                exempt.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        waits += [
            f"{path}:{node.lineno}"
            for node in nodes
            if isinstance(node, _WAITING) and node.lineno not in exempt
        ]
    assert found == adopted, "a coroutine this test allows is no longer compiled"
    assert waits == [], "compiled modules must leave waiting to lightwork/_core/_awaiting.py"
