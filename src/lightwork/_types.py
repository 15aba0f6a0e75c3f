"""Type aliases and protocols shared by the public API."""

from __future__ import annotations

from typing import Literal, TypeAlias

StartPolicy: TypeAlias = Literal["after_response", "immediately"]
"""When tasks added during a request start: once the response is sent, or at once."""

RunIf: TypeAlias = Literal["no_exception", "success", "always"]
"""Which requests release their tasks.

``"no_exception"``: unless the app raised an unhandled exception (the default).
``"success"``: only when the response status is below 400 and nothing was raised.
``"always"``: whatever happened, e.g. to record a failed attempt.
"""
