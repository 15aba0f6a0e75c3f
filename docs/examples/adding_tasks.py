"""The two forms of ``add_task``, a sync function, and the task handle."""

import asyncio
import time

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import lightwork

sent: list[tuple[str, str, str]] = []
thumbnails: list[str] = []


async def send_email(address: str, subject: str, *, name: str = "there") -> None:
    """A task of your own: its keyword arguments may be called anything, even ``name``."""
    await asyncio.sleep(0.01)
    sent.append((address, subject, name))


def make_thumbnail(image: str) -> None:
    """Blocking work in a plain function: lightwork runs it in a worker thread."""
    time.sleep(0.01)  # e.g. resize the image with a library that blocks
    thumbnails.append(image)


async def signup(request: Request) -> JSONResponse:
    """Schedule three tasks; the response does not wait for any of them."""
    background = lightwork.get_background(request)

    # The Starlette form: every argument, keywords included, goes to the function.
    background.add_task(send_email, "ada@example.com", "Welcome", name="Ada")

    # The options form: a coroutine object, then lightwork's own options.
    tips = background.add_task(
        send_email("ada@example.com", "Getting started"), name="tips-email", timeout=5
    )

    # A sync function runs in lightwork's worker threads, off the event loop.
    background.add_task(make_thumbnail, "ada.png")

    # The handle comes back at once; the task starts after the response is sent.
    return JSONResponse({"task_id": tips.id, "name": tips.name, "state": tips.state})


app = Starlette(
    routes=[Route("/signup", signup, methods=["POST"])],
    middleware=[Middleware(lightwork.BackgroundMiddleware)],
)
