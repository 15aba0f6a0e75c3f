"""Overflow to the offload bridge: past the queue's limit, heavy tasks go to a process pool."""

import time

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import lightwork

# With no offload= argument, the bridge's engine is a local process pool.
scheduler = lightwork.Scheduler(
    max_concurrency=4,
    max_pending=20,
    overflow="offload",  # a full queue sends an @offloadable function's task to the bridge
    pending_at_shutdown="spill",  # and so does shutdown, for tasks still in the queue
)
offloaded_jobs: list[lightwork.JobRef[str]] = []


def note_offloaded(error: BaseException) -> None:
    """``on_error`` hears of the hand-off: the error carries the job's reference."""
    if isinstance(error, lightwork.TaskOffloadedError) and isinstance(error.job, lightwork.JobRef):
        offloaded_jobs.append(error.job)  # `await job.result()` gets the thumbnail's path


@lightwork.offloadable("make-thumbnail")
@lightwork.task(on_error=note_offloaded)
def make_thumbnail(path: str) -> str:
    """Runs in one of lightwork's worker threads, or in a worker process once offloaded."""
    time.sleep(0.01)  # stands in for resizing the image
    return path.replace(".png", "-small.png")


async def upload(request: Request) -> JSONResponse:
    """Make the thumbnail after the response, here or, if the queue is full, elsewhere."""
    name = request.path_params["name"]
    handle = lightwork.get_background(request).add_task(make_thumbnail, f"{name}.png")
    return JSONResponse({"task_id": handle.id}, status_code=202)


app = Starlette(
    routes=[Route("/photos/{name}", upload, methods=["POST"])],
    middleware=[Middleware(lightwork.BackgroundMiddleware, scheduler=scheduler)],
)
