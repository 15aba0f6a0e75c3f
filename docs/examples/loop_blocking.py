"""Loop-block detection: thresholds at three levels, a sync function inline or in a thread."""

import contextlib
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import lightwork

# The app's default: a task that holds the event loop over 50 ms at once is reported.
scheduler = lightwork.Scheduler(block_threshold=0.05)
page_views: dict[str, int] = {}
search_index: dict[str, list[str]] = {}


def summarise(text: str) -> str:
    """Blocking work: the pause stands in for a library call that computes for a while."""
    time.sleep(0.1)
    return text[:40]


async def summarise_review(text: str) -> str:
    """Calls the blocking function without awaiting: reported at the app's 50 ms."""
    return summarise(text)


@lightwork.task(block_threshold=0.2)
async def render_invoice(order_id: int) -> str:
    """Renders a template in one go: holding the loop up to 200 ms is accepted for it."""
    return f"<h1>Invoice {order_id}</h1>"


@lightwork.task(inline=True)
def count_page_view(page: str) -> None:
    """Too short to be worth a thread: runs on the event loop itself, as one step."""
    page_views[page] = page_views.get(page, 0) + 1


def resize_photo(path: str) -> str:
    """A plain sync function runs in a worker thread: it never holds the event loop."""
    time.sleep(0.06)  # e.g. an image library that blocks
    return path.replace(".png", "-small.png")


async def build_search_index() -> None:
    """Startup work that computes in one go, before anyone is waiting."""
    search_index["tea"] = [summarise("Tea, the drink of the afternoon")]


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """No request waits yet at startup: this task's steps are not reported (None)."""
    scheduler.add_task(build_search_index(), block_threshold=None)
    yield


async def review(request: Request) -> JSONResponse:
    """Add one task of each kind after the response."""
    background = lightwork.get_background(request)
    background.add_task(summarise_review, "Lovely tea, and the scones were warm.")
    background.add_task(render_invoice, 7)
    background.add_task(count_page_view, "/reviews")
    background.add_task(resize_photo, "scones.png")
    return JSONResponse({"thanks": True}, status_code=201)


app = Starlette(
    routes=[Route("/reviews", review, methods=["POST"])],
    lifespan=lifespan,
    middleware=[Middleware(lightwork.BackgroundMiddleware, scheduler=scheduler)],
)
