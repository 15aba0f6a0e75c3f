"""The ASGI layer's exception."""

from __future__ import annotations

from .._core._exceptions import LightworkError


class BackgroundNotInstalledError(LightworkError, LookupError):
    """Raised when a request has no background handle because BackgroundMiddleware is missing."""
