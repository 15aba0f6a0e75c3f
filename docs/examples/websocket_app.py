"""Background tasks from a websocket: each one starts as soon as it is added."""

import asyncio

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

import lightwork

stored: list[str] = []


async def store_message(text: str) -> None:
    """Write a chat message to the archive."""
    await asyncio.sleep(0.01)
    stored.append(text)


@lightwork.with_background
async def chat(websocket: WebSocket, background: lightwork.Background) -> None:
    """Archive each message in the background while the conversation goes on."""
    await websocket.accept()
    async for text in websocket.iter_text():
        handle = background.add_task(store_message, text)
        await websocket.send_json({"queued": handle.id})


app = Starlette(
    routes=[WebSocketRoute("/chat", chat)],
    middleware=[Middleware(lightwork.BackgroundMiddleware)],
)
