"""Tasks outside requests: from the app's startup code, and from a script with no app."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import lightwork

# Your own scheduler, so that code outside requests can reach it.
scheduler = lightwork.Scheduler(drain_timeout=5)
cache: dict[str, int] = {}


async def warm_cache() -> int:
    """Fill the cache; the app does not wait for it to start serving."""
    await asyncio.sleep(0.01)
    cache.update(products=120, categories=8)
    return len(cache)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """The middleware starts the scheduler before this runs, and drains it before it resumes."""
    scheduler.add_task(warm_cache(), name="warm-cache")
    yield


async def stats(request: Request) -> JSONResponse:
    """``background.scheduler`` runs a task at once, without waiting for this response."""
    background = lightwork.get_background(request)
    background.scheduler.add_task(warm_cache(), name="refresh-cache")
    return JSONResponse(cache)


app = Starlette(
    routes=[Route("/stats", stats)],
    lifespan=lifespan,
    middleware=[Middleware(lightwork.BackgroundMiddleware, scheduler=scheduler)],
)


async def purge(table: str) -> int:
    """Delete a table's expired rows; returns how many went."""
    await asyncio.sleep(0.01)
    return {"sessions": 40, "tokens": 2}.get(table, 0)


async def nightly_cleanup() -> int:
    """A script or a worker: ``async with`` starts a scheduler and drains it at the end."""
    async with lightwork.Scheduler(timeout=600) as cleanup:
        handles = [cleanup.add_task(purge(table)) for table in ("sessions", "tokens")]
        optional = cleanup.add_task(purge("audit_log"), name="purge-audit-log")
        optional.cancel()  # changed our mind: it ends as cancelled, and is logged so
        return sum([await handle for handle in handles])


if __name__ == "__main__":
    asyncio.run(nightly_cleanup())
