"""Every page, in English and Chinese, on a laptop (1440 px) and a tablet (768 px), in a real browser:
screenshots under tests/artifacts/dashboard/pages/ (git-ignored); titles on one line; nothing wider than
the screen; no English or "None" left in Chinese; every table and the store report download.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dash_world as world
import pytest
from dash_server import CHROMIUM, dashboard_server, launch_chromium, log_in, wait_idle

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "dashboard" / "pages"
DAY = world.DAY.isoformat()
WIDTHS = {"laptop": 1440, "tablet": 768}
# Words of the interface that must not be left in English on a Chinese page (the data's own names, such as
# store names, car models and ids, stay as they are).
ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
"""A date as English pages write it: Chinese pages write 2026年11月20日."""
ENGLISH_LEFT = re.compile(r"\b(None|ok|stale|offline|online|excellent|fair|poor|min|Visitors|day-over-day)\b")

if not CHROMIUM.exists():
    if os.environ.get("SHOWROOM_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)", pytrace=False)
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")

PAGES = [
    # (name, user, URL query, text that shows the page is there). Brand HQ's store page is the manager's
    # (test_dash_browser shoots it).
    ("store", "li.wei", f"?date={DAY}&period=day", "Pudong Flagship — 2026-11-20"),
    ("hq", "hq.aurora", f"?date={DAY}&period=week", "Health of Pudong Flagship"),
    ("installer", "tech", "", "Needs attention first"),
]


@pytest.fixture(scope="module")
def world_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("dash_pages")
    return world.build_db(base / "aggregator.sqlite"), world.write_users(base / "users.yaml")


@pytest.fixture(scope="module")
def server(world_db: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with dashboard_server(world_db[0], world_db[1], tmp_path_factory.mktemp("log") / "dashboard.log") as url:
        yield url


@pytest.fixture(scope="module")
def context() -> Iterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        c = browser.new_context(
            viewport={"width": 1440, "height": 1000}, locale="en-US", accept_downloads=True
        )
        yield c
        browser.close()


def _layout_problems(page: Any) -> list[str]:
    """Titles broken over lines, and anything that makes the page wider than the screen."""
    return list(
        page.evaluate(
            """() => {
                const problems = [];
                for (const h of document.querySelectorAll('h1')) {
                    // The lines the title's words are on (its link icon aside).
                    const tops = new Set();
                    const walker = document.createTreeWalker(h, NodeFilter.SHOW_TEXT);
                    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
                        if (!n.textContent.trim()) continue;
                        const range = document.createRange();
                        range.selectNodeContents(n);
                        for (const r of range.getClientRects()) if (r.width > 0) tops.add(Math.round(r.top));
                    }
                    if (tops.size > 1) problems.push('title broken: ' + h.innerText);
                    if (h.scrollWidth > h.clientWidth + 1) problems.push('title cut: ' + h.innerText);
                }
                const doc = document.scrollingElement;
                if (doc.scrollWidth > window.innerWidth + 1) problems.push('page wider than the screen');
                return problems;
            }"""
        )
    )


def _to_chinese(page: Any) -> None:
    page.locator("[data-testid=stSidebar]").get_by_text("简体中文", exact=True).click()
    page.get_by_text("退出登录").wait_for()
    wait_idle(page)


@pytest.mark.parametrize(("name", "user", "query", "marker"), PAGES, ids=[p[0] for p in PAGES])
def test_every_page_in_both_languages_and_widths(
    server: str, context: Any, name: str, user: str, query: str, marker: str
) -> None:
    page = context.new_page()
    try:
        log_in(page, f"{server}/{query}", user, world.PASSWORD)
        page.get_by_text(marker).first.wait_for(timeout=20_000)
        wait_idle(page)
        for lang in ("en", "zh"):
            if lang == "zh":
                _to_chinese(page)
                body = page.locator("[data-testid=stMain]").inner_text()
                left = sorted(set(ENGLISH_LEFT.findall(body)) | set(ISO_DATE.findall(body)))
                assert not left, f"English left on the Chinese {name} page: {left}"
            for device, width in WIDTHS.items():
                page.set_viewport_size({"width": width, "height": 1000})
                wait_idle(page)
                page.screenshot(path=str(ARTIFACTS / f"{name}_{lang}_{device}.png"), full_page=True)
                assert _layout_problems(page) == [], f"{name} ({lang}, {width} px)"
            page.set_viewport_size({"width": 1440, "height": 1000})
    finally:
        page.close()


def test_login_page_in_both_languages(server: str, context: Any) -> None:
    page = context.new_page()
    context.clear_cookies()
    page.goto(server)
    page.get_by_role("button", name="Log in").wait_for()
    wait_idle(page)
    page.screenshot(path=str(ARTIFACTS / "login_en_laptop.png"), full_page=True)
    page.get_by_text("简体中文", exact=True).click()
    page.get_by_role("button", name="登录").wait_for()
    wait_idle(page)
    page.set_viewport_size({"width": 768, "height": 1000})
    page.screenshot(path=str(ARTIFACTS / "login_zh_tablet.png"), full_page=True)
    assert _layout_problems(page) == []
    page.close()


def test_tables_and_the_store_report_download(server: str, context: Any) -> None:
    page = context.new_page()
    log_in(page, f"{server}/?date={DAY}&period=day", "li.wei", world.PASSWORD)
    page.get_by_text("Pudong Flagship — 2026-11-20").wait_for()
    wait_idle(page)
    buttons = page.get_by_role("button", name="Download CSV")
    assert buttons.count() == 4  # time inside cars, zones compared, display cars, health
    with page.expect_download() as got:
        page.locator(".st-key-csv_table_zones_compared").get_by_role("button").click()
    rows = list(csv.reader(io.StringIO(Path(got.value.path()).read_text(encoding="utf-8-sig"))))
    assert rows[0][:3] == ["Rank", "Zone", "Kind"]
    assert rows[1][1] == "Model S Sedan: around" and "Welcome desk" in [r[1] for r in rows[1:]]
    with page.expect_download() as got:
        page.locator(".st-key-csv_table_cars").get_by_role("button").click()
    rows = list(csv.reader(io.StringIO(Path(got.value.path()).read_text(encoding="utf-8-sig"))))
    assert rows[0][:3] == ["Car", "Model", "Browsers"]
    assert [r[0] for r in rows[1:]] == ["car-01", "car-02", "car-03"] and rows[1][2] == "30"

    with page.expect_download(timeout=60_000) as got:
        page.get_by_role("button", name="Download this page as a report (PDF)").click()
    pdf = Path(got.value.path()).read_bytes()
    assert got.value.suggested_filename == "sh-01-2026-11-20.pdf"
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    page.close()
