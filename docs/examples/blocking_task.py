"""Loop-block detection: a task that computes without awaiting is reported, with its route."""

import asyncio
import hashlib
import time

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import lightwork

digests: list[str] = []


def checksum(data: bytes) -> str:
    """Blocking work: the pause stands in for hashing a large upload."""
    time.sleep(0.05)
    return hashlib.sha256(data).hexdigest()


async def index_upload_on_the_loop(data: bytes) -> None:
    """Wrong: the blocking call runs on the event loop, and every other request waits."""
    digests.append(checksum(data))


async def index_upload(data: bytes) -> None:
    """Right: the same work in a worker thread; the event loop stays free meanwhile."""
    digests.append(await asyncio.to_thread(checksum, data))


async def upload(request: Request) -> Response:
    """Index the upload after the response, both ways."""
    data = await request.body()
    background = lightwork.get_background(request)
    background.add_task(index_upload_on_the_loop, data)
    background.add_task(index_upload, data)
    return Response(status_code=202)


app = Starlette(
    routes=[Route("/upload", upload, methods=["POST"])],
    middleware=[Middleware(lightwork.BackgroundMiddleware)],
)
