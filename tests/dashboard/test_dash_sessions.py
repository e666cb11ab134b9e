"""Log-in sessions in a real browser: a reload keeps the session, log-out ends it on the server, a lock-out
stays with the browser that earned it, and Back returns to the previous view.

`showroom dashboard` on localhost, Debian's Chromium driven by Playwright; each browser context is its own
cookie jar, i.e. another browser.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import Any

import dash_world as world
import pytest
from dash_server import CHROMIUM, dashboard_server, launch_chromium, log_in, wait_idle

from dashboard.sessions import CLIENT_COOKIE, COOKIE_ROUTE, SESSION_COOKIE

DAY = world.DAY.isoformat()
VIEWPORT = {"width": 1440, "height": 1800}

if not CHROMIUM.exists():
    if os.environ.get("SHOWROOM_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)", pytrace=False)
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("dash_sessions")
    db = world.build_db(base / "aggregator.sqlite")
    users = world.write_users(base / "users.yaml")
    with dashboard_server(db, users, base / "dashboard.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    c = browser.new_context(viewport=VIEWPORT, locale="en-US")
    yield c
    c.close()


def _cookie(context: Any, name: str) -> str | None:
    return next((c["value"] for c in context.cookies() if c["name"] == name and c["value"]), None)


def _wait_cookie(page: Any, name: str, timeout_s: float = 20.0) -> str:
    """The cookie `name` once the page has stored it."""
    deadline = time.monotonic() + timeout_s
    while (value := _cookie(page.context, name)) is None:
        assert time.monotonic() < deadline, f"the page stored no {name} cookie within {timeout_s} s"
        page.wait_for_timeout(200)
    return value


def _login_form_shown(page: Any) -> bool:
    page.get_by_role("button", name="Log in").wait_for(timeout=20_000)
    return page.get_by_text("Signed in as").count() == 0


def test_reload_keeps_the_session_and_log_out_ends_it(server: str, browser: Any, context: Any) -> None:
    page = context.new_page()
    log_in(page, f"{server}/?date={DAY}&period=day", "li.wei", world.PASSWORD)
    page.get_by_text("Pudong Flagship — 2026-11-20").wait_for()
    cookie = _wait_cookie(page, SESSION_COOKIE)
    assert world.PASSWORD not in cookie
    # Set by the server, HttpOnly: no script on the page can read either cookie.
    jar = {c["name"]: c for c in context.cookies()}
    for name in (SESSION_COOKIE, CLIENT_COOKIE):
        assert jar[name]["httpOnly"] is True and jar[name]["sameSite"] == "Strict", jar[name]
    assert "showroom_" not in page.evaluate("document.cookie")
    # The cookie route takes only the one-time codes the server handed out.
    refused = context.request.post(f"{server}{COOKIE_ROUTE}", data="made-up-code")
    assert refused.status == 404

    page.reload()
    page.get_by_text("Signed in as 李伟").wait_for(timeout=20_000)
    wait_idle(page)
    assert page.get_by_role("button", name="Log in").count() == 0
    assert page.get_by_text("Pudong Flagship — 2026-11-20").count() == 1

    # A cookie the server did not sign opens nothing.
    forged = browser.new_context(viewport=VIEWPORT)
    forged.add_cookies([{"name": SESSION_COOKIE, "value": cookie[:-4] + "AAAA", "url": server}])
    other = forged.new_page()
    other.goto(server)
    assert _login_form_shown(other)
    forged.close()

    page.locator("[data-testid=stSidebar]").get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Log in").wait_for(timeout=20_000)
    deadline = time.monotonic() + 20
    while _cookie(context, SESSION_COOKIE) is not None:  # deleted in the browser by the server
        assert time.monotonic() < deadline, "log-out left the session cookie in the browser"
        page.wait_for_timeout(200)
    # The session is over on the server: the very cookie, kept by someone, no longer opens it.
    kept = browser.new_context(viewport=VIEWPORT)
    kept.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": server}])
    stolen = kept.new_page()
    stolen.goto(f"{server}/?date={DAY}")
    assert _login_form_shown(stolen)
    assert "Pudong" not in stolen.locator("body").inner_text()
    kept.close()
    page.reload()
    assert _login_form_shown(page)


def test_lock_out_stays_with_the_browser_that_guessed(server: str, browser: Any, context: Any) -> None:
    guesser = context.new_page()
    guesser.goto(server)
    _wait_cookie(guesser, CLIENT_COOKIE)
    for attempt in range(5):
        guesser.get_by_role("textbox", name="Username").fill("hq.aurora")
        guesser.get_by_role("textbox", name="Password").fill(f"wrong-guess-{attempt}")
        guesser.get_by_role("button", name="Log in").click()
        guesser.get_by_text("Unknown username or wrong password.").wait_for()
        wait_idle(guesser)
    # The guessing browser is locked out, even with the right password and after a reload.
    guesser.reload()
    guesser.get_by_role("textbox", name="Username").fill("hq.aurora")
    guesser.get_by_role("textbox", name="Password").fill(world.PASSWORD)
    guesser.get_by_role("button", name="Log in").click()
    guesser.get_by_text("Too many failed attempts").wait_for()
    assert guesser.get_by_text("Signed in as").count() == 0

    # The real user, in another browser, logs in.
    real = browser.new_context(viewport=VIEWPORT, locale="en-US")
    page = real.new_page()
    log_in(page, f"{server}/?date={DAY}&period=day", "hq.aurora", world.PASSWORD)
    assert page.get_by_text("Too many failed attempts").count() == 0
    real.close()


def test_back_returns_to_the_previous_view(server: str, context: Any) -> None:
    page = context.new_page()
    log_in(page, f"{server}/?view=hq&date={DAY}&period=day", "hq.aurora", world.PASSWORD)
    page.get_by_role("heading", name="Brand HQ").first.wait_for()
    assert "view=hq" in page.url
    page.locator("[data-testid=stSidebar] [data-testid=stRadio]").get_by_text("Store", exact=True).click()
    store_title = page.get_by_role("heading", name=re.compile(r" — 2026-11-20$"))
    store_title.wait_for(timeout=20_000)
    wait_idle(page)
    assert "view=store" in page.url

    page.go_back()
    page.wait_for_url("**view=hq**")
    page.get_by_role("heading", name="Brand HQ").first.wait_for(timeout=20_000)
    wait_idle(page)
    assert store_title.count() == 0
    page.go_forward()
    store_title.wait_for(timeout=20_000)

    # A deep link opens its view once logged in (the session comes from the cookie: no form).
    page.goto(f"{server}/?view=store&store=bj-02&date={DAY}")
    page.get_by_text("Chaoyang Mall — 2026-11-20").wait_for(timeout=20_000)
    assert page.get_by_role("button", name="Log in").count() == 0
