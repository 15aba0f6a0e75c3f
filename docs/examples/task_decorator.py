"""``@lightwork.task``: defaults that every task made from a function picks up."""

import asyncio

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import lightwork

synced: list[int] = []
crm_errors: list[BaseException] = []


@lightwork.task(name="crm-sync", timeout=10, slow_threshold=1.0, on_error=crm_errors.append)
async def sync_contact(contact_id: int) -> None:
    """Copy a contact to the CRM; slowish by nature, so its slow threshold is 1 s."""
    await asyncio.sleep(0.01)
    synced.append(contact_id)


async def update_contact(request: Request) -> JSONResponse:
    """Both forms pick up the definition's options; options passed to the call win."""
    contact_id = int(request.path_params["contact_id"])
    background = lightwork.get_background(request)
    # The Starlette form takes no options: the definition's all apply.
    background.add_task(sync_contact, contact_id)
    # The options form: timeout=60 wins, name, slow_threshold and on_error still apply.
    background.add_task(sync_contact(contact_id), timeout=60)
    return JSONResponse({"contact_id": contact_id})


app = Starlette(
    routes=[Route("/contacts/{contact_id:int}", update_contact, methods=["PUT"])],
    middleware=[Middleware(lightwork.BackgroundMiddleware)],
)
