"""Quickstart: a Starlette app that answers a signup at once and sends the email afterwards."""

import asyncio

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import lightwork

outbox: list[str] = []


async def send_welcome_email(address: str) -> None:
    """Send the email; the pause stands in for talking to a mail server."""
    await asyncio.sleep(0.05)
    outbox.append(address)


async def signup(request: Request) -> JSONResponse:
    """Answer at once: the email is sent once the response is on its way."""
    address = (await request.json())["email"]
    lightwork.get_background(request).add_task(send_welcome_email, address)
    return JSONResponse({"email": address}, status_code=201)


app = Starlette(
    routes=[Route("/signup", signup, methods=["POST"])],
    middleware=[Middleware(lightwork.BackgroundMiddleware)],
)
