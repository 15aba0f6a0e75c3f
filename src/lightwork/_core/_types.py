"""Type aliases and protocols shared by the public API."""

from __future__ import annotations

from typing import Literal, TypeAlias

StartPolicy: TypeAlias = Literal["after_response", "immediately"]
"""When tasks added during a request start: once the response is sent, or at once."""

RunIf: TypeAlias = Literal["no_exception", "success", "always"]
"""Which requests release their tasks.

``"no_exception"``: unless the app raised an unhandled exception (the default).
``"success"``: only when nothing was raised, the status is below 400 and the whole
response was sent (a stream the client cut off does not count).
``"always"``: whatever happened, e.g. to record a failed attempt.
"""
