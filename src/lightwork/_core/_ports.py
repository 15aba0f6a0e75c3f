"""What the core hands work over to: the offload bridge, as the scheduler sees it.

The core never imports the bridge. A ``Scheduler`` is given an ``OffloadPort`` (the public
``lightwork.Scheduler`` gives it an ``Offloader``) and asks it to take an unstarted task's
call when a policy says so (``overflow="offload"``, ``pending_at_shutdown="spill"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from ._exceptions import TaskError
    from ._handle import TaskHandle


class OffloadPort(Protocol):
    """The offload bridge as the scheduler sees it: started, closed, asked to take tasks."""

    async def start(self) -> None:
        """Get ready to take tasks; called as the scheduler starts."""

    async def aclose(self) -> None:
        """Deliver or keep what was handed over; called once the scheduler has drained."""

    def accepts(self, fn: object) -> bool:
        """Tell whether a task calling *fn* could be handed over, so that its call is kept."""

    def is_hand_off(self, coro: object) -> bool:
        """Tell whether *coro* is the port's own hand-off, which never waits behind the limits."""

    def take_over(self, source: Any, handle: TaskHandle[Any], reason: str) -> TaskError:
        """Take *handle*'s kept call as a job; return what awaiting the handle raises.

        Raises whatever refuses the job (arguments it cannot carry, say): the scheduler
        then drops or rejects the task as its policy says.
        """


class _NoOffload:
    """The port of a scheduler with no offload bridge: it takes nothing."""

    __slots__ = ()

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def accepts(self, fn: object) -> bool:
        return False

    def is_hand_off(self, coro: object) -> bool:
        return False

    def take_over(self, source: Any, handle: TaskHandle[Any], reason: str) -> TaskError:
        raise RuntimeError(f"task {handle.name!r} cannot be offloaded: no offload bridge")


NO_OFFLOAD: Final[OffloadPort] = _NoOffload()
