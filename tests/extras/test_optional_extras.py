"""Each optional module, imported without its extra, says which extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "dependency", "extra"),
    [
        ("lightwork.prometheus", "prometheus_client", "prometheus"),
        ("lightwork.otel", "opentelemetry", "otel"),
    ],
)
def test_a_missing_extra_is_named_with_the_command_that_installs_it(
    module: str, dependency: str, extra: str
) -> None:
    code = (
        f"import sys; sys.modules[{dependency!r}] = None  # as if not installed\n"
        "try:\n"
        f"    import {module}\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == (
        f"MissingDependencyError {module} needs an optional dependency: "
        f"pip install 'lightwork[{extra}]'"
    )
