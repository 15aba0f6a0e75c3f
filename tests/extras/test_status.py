"""The status page: its check, its JSON through TestClient, and its HTML in a real browser."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect, sync_playwright
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

import lightwork
from lightwork import Scheduler
from lightwork.status import StatusCheck, status_app
from lightwork.testing import TaskRecorder
from tests.http_server import serving
from tests.support import spin

ADMIN = {"x-admin": "yes"}
HELD = re.compile(r"^\d+\.\d+ ms$")  # how the page shows a few milliseconds


def is_admin(request: Request) -> bool:
    return request.headers.get("x-admin") == "yes"


def build_app(check: StatusCheck = is_admin, scheduler: Scheduler | None = None) -> Starlette:
    """An app whose /report starts a task that runs until /finish, and its status page."""
    finish = asyncio.Event()

    async def render_report() -> None:
        await finish.wait()

    async def resize_image() -> None:
        await asyncio.sleep(0.02)

    async def crunch_numbers() -> None:
        # CPU work inside a coroutine: it holds the event loop well past the 20 ms block
        # threshold, for the sampling watchdog to see it even on a busy machine (whose
        # threads may wait tens of milliseconds for a CPU: with three suites on two CPUs,
        # 100 ms went unseen once, on 3.13).
        spin(0.25)

    async def report(request: Request) -> PlainTextResponse:
        finish.clear()
        lightwork.get_background(request).add_task(render_report())
        return PlainTextResponse("started")

    async def resize(request: Request) -> PlainTextResponse:
        lightwork.get_background(request).add_task(resize_image())
        return PlainTextResponse("resizing")

    async def crunch(request: Request) -> PlainTextResponse:
        lightwork.get_background(request).add_task(crunch_numbers())
        return PlainTextResponse("crunching")

    async def done(request: Request) -> PlainTextResponse:
        finish.set()
        return PlainTextResponse("finished")

    return Starlette(
        routes=[
            Route("/report", report),
            Route("/resize", resize),
            Route("/crunch", crunch),
            Route("/finish", done),
            Mount("/_lightwork", status_app(check=check, scheduler=scheduler, refresh_s=0.1)),
        ],
        middleware=[Middleware(lightwork.BackgroundMiddleware, scheduler=scheduler)],
    )


def test_stats_json_shows_the_running_task_and_the_counts(lightwork_tasks: TaskRecorder) -> None:
    with TestClient(build_app()) as client:
        client.get("/resize")
        client.get("/report")
        [_, running] = lightwork_tasks.tasks
        response = client.get("/_lightwork/stats.json", headers=ADMIN)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        stats = response.json()
        [shown] = [t for t in stats["running"] if t["id"] == running.id]
        assert shown["name"] == "render_report"
        assert shown["state"] == "running"
        assert shown["route"] == "GET /report"
        assert shown["duration_s"] >= 0
        assert stats["tasks"]["render_report"]["in_flight"] == 1
        assert stats["totals"]["scheduled"] == 2
        client.get("/finish")
        lightwork_tasks.wait()
        stats = client.get("/_lightwork/stats.json", headers=ADMIN).json()
        assert stats["running"] == []
        assert stats["tasks"]["render_report"]["completed"] == 1
        assert stats["tasks"]["resize_image"]["duration_s"]["count"] == 1


def test_the_page_is_self_contained_and_locked_down() -> None:
    with TestClient(build_app()) as client:
        response = client.get("/_lightwork/", headers=ADMIN)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    page = response.text
    for external in ("http://", "https://", "src=", "href=", "@import"):
        assert external not in page
    assert 'data-refresh-ms="100"' in page


@pytest.mark.parametrize("path", ["/_lightwork/", "/_lightwork/stats.json"])
def test_a_request_the_check_refuses_gets_a_403(path: str) -> None:
    with TestClient(build_app()) as client:
        assert client.get(path).status_code == 403
        assert client.get(path, headers={"x-admin": "no"}).status_code == 403
        assert client.get(path, headers=ADMIN).status_code == 200


def test_an_async_check_is_awaited_and_only_true_lets_through() -> None:
    verdicts: list[object] = []

    async def check(request: Request) -> bool:
        await asyncio.sleep(0)
        return verdicts.pop()  # type: ignore[return-value]  # a truthy non-bool on purpose

    with TestClient(build_app(check)) as client:
        verdicts.append(True)
        assert client.get("/_lightwork/stats.json").status_code == 200
        verdicts.append("yes")
        assert client.get("/_lightwork/stats.json").status_code == 403


def test_a_check_may_ask_for_credentials_with_an_http_exception() -> None:
    def check(request: Request) -> bool:
        if "authorization" not in request.headers:
            raise HTTPException(401, headers={"WWW-Authenticate": 'Basic realm="lightwork"'})
        return True

    with TestClient(build_app(check)) as client:
        response = client.get("/_lightwork/")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Basic realm="lightwork"'
        assert client.get("/_lightwork/", headers={"authorization": "x"}).status_code == 200


async def test_a_given_scheduler_is_shown_instead_of_the_middlewares() -> None:
    async with Scheduler() as scheduler:
        await scheduler.add_task(asyncio.sleep(0), name="nightly")
        app = Starlette(routes=[Mount("/", status_app(check=is_admin, scheduler=scheduler))])
        with TestClient(app) as client:  # no BackgroundMiddleware needed
            stats = client.get("/stats.json", headers=ADMIN).json()
    assert stats["tasks"]["nightly"]["completed"] == 1


def test_without_the_middleware_or_a_scheduler_the_error_says_how_to_set_it_up() -> None:
    app = Starlette(routes=[Mount("/", status_app(check=is_admin))])
    with TestClient(app) as client, pytest.raises(lightwork.BackgroundNotInstalledError):
        client.get("/stats.json", headers=ADMIN)


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"check": None}, TypeError, "status_app needs check="),
        ({"check": "admin"}, TypeError, "not 'admin'"),
        ({"check": is_admin, "refresh_s": 0}, ValueError, "refresh_s"),
    ],
)
def test_the_app_refuses_to_be_made_without_a_usable_check(
    arguments: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        status_app(**arguments)


# -- the page in a real browser -----------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, driven by playwright (whose own browser downloads are never used)."""
    if not shutil.which(CHROMIUM) and not os.environ.get("LIGHTWORK_REQUIRE_CHROMIUM"):
        pytest.skip("chromium is not installed (apt-get install chromium); CI installs it")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


@pytest.mark.slow
def test_the_page_shows_a_running_task_and_refreshes_by_itself(
    browser: Browser, lightwork_tasks: TaskRecorder, tmp_path: Path
) -> None:
    allowed = [True]

    def check(request: Request) -> bool:
        return allowed[-1] and is_admin(request)

    with serving(build_app(check)) as base:
        for _ in range(3):
            get(base + "/resize")
        get(base + "/crunch")
        get(base + "/report")
        context = browser.new_context(
            extra_http_headers=ADMIN, viewport={"width": 1100, "height": 900}
        )
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(base + "/_lightwork/")

        running = page.locator("#running tbody")
        expect(running).to_contain_text("render_report", timeout=10_000)
        expect(running).to_contain_text("GET /report")
        expect(page.locator("#totals [data-key=in_flight]")).to_have_text("1")
        expect(page.locator("#totals [data-key=offloaded]")).to_have_text("0")  # every end state
        expect(page.locator("#slowest tbody")).to_contain_text("resize_image")
        # The CPU-bound task tops "most blocking", with its one background_task_blocking warning.
        most_blocking = page.locator("#blocking tbody tr").first.locator("td")
        expect(most_blocking).to_have_text(["crunch_numbers", HELD, HELD, "1"])
        page.screenshot(path=tmp_path / "status.png", full_page=True)
        if target := os.environ.get("LIGHTWORK_STATUS_SCREENSHOT"):
            page.screenshot(path=target, full_page=True)

        get(base + "/finish")  # the page notices by itself, at its next refresh
        expect(running).to_have_text("none", timeout=10_000)
        expect(page.locator("#slowest tbody")).to_contain_text("render_report")
        assert problems == []  # no script error, nothing blocked by the page's own policy

        allowed.append(False)  # say, the admin's session ended: the page says why it is stale
        expect(page.locator("#updated")).to_have_text(
            "Could not refresh: the server answered 403", timeout=10_000
        )

        refused = browser.new_context().new_page()  # without the admin header
        answer = refused.goto(base + "/_lightwork/")
        assert answer is not None
        assert answer.status == 403
        refused.context.close()
        context.close()
    lightwork_tasks.wait()
