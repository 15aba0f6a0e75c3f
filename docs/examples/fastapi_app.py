"""FastAPI: ``BackgroundDep`` in a path operation, and ``run_if`` with ``HTTPException``."""

import asyncio

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

import lightwork
from lightwork.fastapi import BackgroundDep

confirmations: list[int] = []
attempts: list[tuple[int, int]] = []


class Order(BaseModel):
    """An order as the client sends it."""

    id: int
    items: list[str]


async def send_confirmation(order_id: int) -> None:
    """Email the customer that the order is placed."""
    await asyncio.sleep(0.01)
    confirmations.append(order_id)


async def record_attempt(order_id: int, item_count: int) -> None:
    """Keep every attempt, failed ones included, for the fraud checks."""
    await asyncio.sleep(0.01)
    attempts.append((order_id, item_count))


app = FastAPI()
# Only successful responses (status below 400) release their tasks, unless a task says otherwise.
app.add_middleware(lightwork.BackgroundMiddleware, run_if="success")


@app.post("/orders", status_code=201)
async def place_order(order: Order, background: BackgroundDep) -> dict[str, int]:
    """Confirm the order after the response; record the attempt whatever happens."""
    background.add_task(record_attempt(order.id, len(order.items)), run_if="always")
    background.add_task(send_confirmation, order.id)
    if not order.items:
        # An HTTPException becomes a 422 response: run_if="success" drops the confirmation.
        raise HTTPException(status_code=422, detail="an order needs at least one item")
    return {"id": order.id}
