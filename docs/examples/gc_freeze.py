"""Garbage collection under load: freeze what startup made, once the app has started."""

import contextlib
import gc
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import lightwork

catalogue: dict[str, str] = {}


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Load what the app keeps for its whole life, then hide it from the collector."""
    catalogue.update({f"sku-{n}": f"item {n}" for n in range(10_000)})
    gc.collect()  # what startup left as garbage goes now, not into the frozen generation
    gc.freeze()  # everything alive now: never walked again by a full collection
    yield
    gc.unfreeze()


async def record_view(sku: str) -> None:
    """The task each request adds: short-lived, like the request itself."""
    catalogue.get(sku)


async def item(request: Request) -> PlainTextResponse:
    """Answer from the frozen catalogue; the task is garbage the collector still sees."""
    sku = request.path_params["sku"]
    lightwork.get_background(request).add_task(record_view, sku)
    return PlainTextResponse(catalogue.get(sku, "unknown"))


app = Starlette(
    routes=[Route("/items/{sku}", item)],
    lifespan=lifespan,
    middleware=[Middleware(lightwork.BackgroundMiddleware)],
)
