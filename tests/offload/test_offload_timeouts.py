"""The shared timer behind the call timeout: calls still running at it are cancelled, others not."""

from __future__ import annotations

import asyncio

from lightwork._offload._timeouts import SLICES_PER_TIMEOUT, CallTimeouts


async def test_a_call_still_running_at_its_timeout_is_cancelled_never_early() -> None:
    loop = asyncio.get_running_loop()
    timeouts = CallTimeouts(loop, 0.08)

    async def hung_call() -> tuple[bool, float]:
        task = asyncio.current_task()
        assert task is not None
        started, calls = loop.time(), timeouts.watch(task)
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return calls.pop(task), loop.time() - started
        raise AssertionError("the call was not timed out")

    timed_out, waited = await hung_call()
    assert timed_out
    assert waited >= 0.08 - 0.002  # uvloop's timers keep milliseconds and may fire early
    assert "slices=0" in repr(timeouts)


async def test_calls_that_ended_in_time_are_left_alone() -> None:
    loop = asyncio.get_running_loop()
    timeouts = CallTimeouts(loop, 0.04)
    task = asyncio.current_task()
    assert task is not None
    for _ in range(3):  # the same slice for all, or one each: either way none is cancelled
        calls = timeouts.watch(task)
        await asyncio.sleep(0)
        assert calls.pop(task) is False
    await asyncio.sleep(0.04 * (1 + 2 / SLICES_PER_TIMEOUT) + 0.02)  # past every slice
    assert task.cancelling() == 0
    assert "calls=0 slices=0" in repr(timeouts)
