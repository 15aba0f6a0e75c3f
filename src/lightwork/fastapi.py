"""FastAPI support: ``BackgroundDep`` gives a path operation the request's background handle.

Example:
    ```python
    from lightwork.fastapi import BackgroundDep

    @app.post("/signup")
    async def signup(address: str, background: BackgroundDep) -> dict[str, str]:
        background.add_task(send_welcome_email, address)
        return {"status": "ok"}
    ```

Add ``lightwork.BackgroundMiddleware`` to the app (``app.add_middleware(BackgroundMiddleware)``).
An ``HTTPException`` is answered as a response, so it follows the same ``run_if`` rule as
any response with its status code.
"""

# No `from __future__ import annotations` here: FastAPI reads the dependency's annotations.
from typing import Annotated, TypeAlias

from starlette.requests import HTTPConnection

from ._asgi._background import Background, get_background
from ._core._exceptions import MissingDependencyError

try:
    from fastapi import Depends
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("lightwork.fastapi", "fastapi") from exc

__all__ = ["BackgroundDep", "background"]


async def background(connection: HTTPConnection) -> Background:
    """Return the request's background handle; the dependency behind ``BackgroundDep``.

    Async, though it never waits: FastAPI runs a sync dependency in Starlette's thread pool,
    so an async endpoint would wait for a free thread just to get its handle.
    """
    return get_background(connection)


BackgroundDep: TypeAlias = Annotated[Background, Depends(background)]
"""A path-operation parameter annotated with this receives the request's ``Background``."""
