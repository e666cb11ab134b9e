"""The dashboard in a real browser: `showroom dashboard` on localhost, Debian's Chromium driven by Playwright.

The database is filled by the aggregator's ingest from known events (dash_world). Each role logs in; the
figures on the page must equal the aggregator's query results; a store manager must not reach another
store by editing the URL; a screenshot of every page goes to tests/artifacts/dashboard/ (git-ignored).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dash_world as world
import pytest
from dash_server import CHROMIUM, dashboard_server, launch_chromium, log_in, wait_idle

from aggregator.queries import Queries
from dashboard import format as fmt

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "dashboard"
DAY = world.DAY.isoformat()
LAPTOP = {"width": 1440, "height": 2900}
TABLET = {"width": 820, "height": 3200}

if not CHROMIUM.exists():
    if os.environ.get("SHOWROOM_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)", pytrace=False)
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def world_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("dash_browser")
    return world.build_db(base / "aggregator.sqlite"), world.write_users(base / "users.yaml")


@pytest.fixture(scope="module")
def server(world_db: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("dash_log") / "dashboard.log"
    with dashboard_server(world_db[0], world_db[1], log) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture(scope="module")
def laptop(browser: Any) -> Iterator[Any]:
    # One context for the module: the app's scripts load once; each page is its own Streamlit session.
    context = browser.new_context(viewport=LAPTOP, locale="en-US")
    yield context
    context.close()


@pytest.fixture
def page(laptop: Any) -> Iterator[Any]:
    p = laptop.new_page()
    yield p
    p.close()


@pytest.fixture(scope="module")
def queries(world_db: tuple[Path, Path]) -> Iterator[Queries]:
    q = Queries.open(world_db[0])
    yield q
    q.close()


def _metric_values(page: Any) -> dict[str, str]:
    labels = page.locator('[data-testid="stMetricLabel"]').all_inner_texts()
    values = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
    return {label.strip(): value.strip() for label, value in zip(labels, values, strict=True)}


def _table_rows(table: Any) -> list[list[str]]:
    """Cell texts of an st.table's body rows."""
    return [
        [c.strip() for c in row.locator("td").all_inner_texts()] for row in table.locator("tbody tr").all()
    ]


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _drawn_charts(page: Any) -> list[str]:
    """The alt texts of the page's charts (SVG pictures drawn on the server) that the browser has drawn."""
    return list(
        page.eval_on_selector_all(
            '[data-testid="stImage"] img',
            "imgs => imgs.filter(i => i.complete && i.naturalWidth > 0).map(i => i.alt)",
        )
    )


def test_login_page_shows_nothing_else(server: str, page: Any) -> None:
    page.goto(f"{server}/?view=store&store=sh-01&date={DAY}")
    page.get_by_role("button", name="Log in").wait_for()
    wait_idle(page)
    _shot(page, "login")
    body = page.locator("body").inner_text()
    assert "Pudong" not in body and "Visitors" not in body
    assert page.locator('[data-testid="stMetricValue"]').count() == 0
    page.get_by_role("textbox", name="Username").fill("li.wei")
    page.get_by_role("textbox", name="Password").fill("wrong-password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("Unknown username or wrong password.").wait_for()
    assert page.locator('[data-testid="stMetricValue"]').count() == 0


def test_store_manager_sees_the_aggregators_figures(server: str, page: Any, queries: Queries) -> None:
    log_in(page, f"{server}/?date={DAY}&period=day", "li.wei", world.PASSWORD)
    page.get_by_text("Pudong Flagship — 2026-11-20").wait_for()
    wait_idle(page)
    _shot(page, "store_manager_store")
    funnel = queries.funnel("sh-01", world.DAY)
    shown = _metric_values(page)
    assert shown["Visitors"] == fmt.count(funnel.today.visitors) == "59"
    assert shown["Car browsers"] == fmt.count(funnel.today.car_browsers) == "46"
    assert shown["Car entrants"] == fmt.count(funnel.today.car_entrants) == "11"
    assert shown["Browse rate"] == fmt.pct(funnel.today.browse_rate) == "77.97%"
    assert shown["Car-entry rate"] == fmt.pct(funnel.today.car_entry_rate) == "23.91%"
    assert shown["Reception rate"] == fmt.pct(funnel.today.reception_rate)
    body = page.locator("body").inner_text()
    for attr in ("visitors", "car_browsers", "car_entrants"):
        assert f"{fmt.change(getattr(funnel.dod, attr))} day-over-day" in body
        assert f"{fmt.change(getattr(funnel.wow, attr))} week-over-week" in body
    assert funnel.dod.browse_rate_pp is not None  # rates change in percentage points
    assert f"{funnel.dod.browse_rate_pp:+.2f} pp day-over-day" in body
    # Car ranking table: the aggregator's order and counts.
    rows = _table_rows(page.locator('[data-testid="stTable"]').filter(has_text="Median dwell"))
    cars = queries.car_ranking("sh-01", world.DAY, world.DAY)
    assert [(r[0], r[2], r[5]) for r in rows] == [(c.car_id, str(c.browsers), str(c.entries)) for c in cars]
    assert len(rows) == 3
    # Hourly chart, floor heatmap, car chart, health radar: all drawn (their content is checked in
    # test_dash_apptest).
    assert _drawn_charts(page) == [
        "Hourly traffic",
        "Floor heatmap",
        "Display cars",
        "Health of Pudong Flagship",
    ]

    # The heatmap as the browser got it: its legend says where the colour scale stops, the cars are named
    # on the plan with the time spent inside them, kept off the floor's colours.
    src = page.locator('[data-testid="stImage"] img[alt="Floor heatmap"]').get_attribute("src")
    assert src is not None and src.startswith("data:image/svg+xml;base64,")
    svg = base64.b64decode(src.split(",", 1)[1]).decode("utf-8")
    assert "person-s per cell (colour clipped at the 99th percentile)" in svg
    for car in world.CARS:
        assert str(car["model_name"]) in svg
    assert "inside: " in svg and "person-min" in svg
    assert "colour scale stops at the 99th percentile of occupied floor cells" in body
    # Over the floor's outline (no drawing configured): the door, staff area and reception by name, with
    # the plan's legend.
    for text in world.PLAN_LABELS:
        assert f">{text}</text>" in svg, text
    assert "No floor drawing is configured" in body
    assert "Time inside the display cars" in body

    # The same page on a tablet (portrait), then in Chinese.
    page.set_viewport_size(TABLET)
    wait_idle(page)
    _shot(page, "store_manager_tablet")
    assert _metric_values(page)["Visitors"] == "59"
    page.locator("[data-testid=stSidebar]").get_by_text("简体中文", exact=True).click()
    page.get_by_text("2026年11月20日 漏斗").wait_for()
    wait_idle(page)
    _shot(page, "store_manager_store_zh")
    assert _metric_values(page)["进店人数"] == "59"
    src = page.locator('[data-testid="stImage"] img[alt="热力图"]').get_attribute("src")
    assert src is not None
    svg = base64.b64decode(src.split(",", 1)[1]).decode("utf-8")
    for text in ("每格人·秒（色阶截断于第 99 百分位）", "平面图", "门", "员工区", "接待区", "Main entrance"):
        assert f">{text}</text>" in svg, text


def test_store_manager_cannot_reach_another_store(server: str, page: Any) -> None:
    # Each URL is a fresh page load, so a fresh log-in: the store asked for is checked after log-in.
    for other in ("bj-02", "gz-03"):
        log_in(page, f"{server}/?store={other}&date={DAY}", "li.wei", world.PASSWORD)
        page.get_by_text(f"You do not have access to store {other}.").wait_for()
        wait_idle(page)
        _shot(page, f"store_manager_denied_{other}")
        assert page.locator('[data-testid="stMetricValue"]').count() == 0
        body = page.locator("body").inner_text()
        assert "Chaoyang" not in body and "Tianhe" not in body
    # The role's other doors are shut too.
    log_in(page, f"{server}/?view=hq", "li.wei", world.PASSWORD)
    page.get_by_text("This view is not available to your role.").wait_for()
    assert page.locator('[data-testid="stDataFrame"]').count() == 0


def test_brand_hq_league_and_health(server: str, page: Any, queries: Queries) -> None:
    log_in(page, f"{server}/?date={DAY}&period=day", "hq.aurora", world.PASSWORD)
    page.get_by_text("Health of Pudong Flagship").wait_for()
    wait_idle(page)
    _shot(page, "brand_hq")
    health = queries.health("sh-01", world.DAY, world.DAY)
    assert health.score is not None
    assert _metric_values(page)["Health score"] == f"{health.score:.1f}"
    rows = _table_rows(page.locator('[data-testid="stTable"]').first)
    assert [r[-1] for r in rows] == [f"{d.score:.1f}" for d in health.dimensions]
    assert "2 stores" in page.locator("body").inner_text()
    # The store chooser under the league lists the league's stores: the brand's, never another brand's.
    chooser = page.locator('[data-testid="stMain"] [data-testid="stSelectbox"]').filter(has_text="Store")
    chooser.get_by_role("button", name="Open").click()
    page.get_by_role("option").first.wait_for()
    options = [o.strip() for o in page.get_by_role("option").all_inner_texts()]
    assert options == ["Pudong Flagship (sh-01)", "Chaoyang Mall (bj-02)"]
    page.keyboard.press("Escape")
    assert len(_drawn_charts(page)) == 2  # radar and trends


def test_brand_hq_league_row_opens_the_store(server: str, page: Any) -> None:
    log_in(page, f"{server}/?date={DAY}&period=day", "hq.aurora", world.PASSWORD)
    page.get_by_text("Health of Pudong Flagship").wait_for()
    wait_idle(page)
    # The league is a canvas grid, best health first (sh-01, then bj-02): tick the second row's marker.
    grid = page.locator('[data-testid="stDataFrame"]').first
    box = grid.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 18, box["y"] + 35 * 2 + 17)
    page.get_by_text("Chaoyang Mall — 2026-11-20").wait_for()
    assert "view=store" in page.url and "store=bj-02" in page.url


def test_brand_hq_store_view_and_tampering(server: str, page: Any, queries: Queries) -> None:
    log_in(page, f"{server}/?view=store&store=bj-02&date={DAY}", "hq.aurora", world.PASSWORD)
    page.get_by_text("Chaoyang Mall — 2026-11-20").wait_for()
    wait_idle(page)
    _shot(page, "brand_hq_store")
    assert _metric_values(page)["Visitors"] == fmt.count(queries.funnel("bj-02", world.DAY).today.visitors)
    log_in(page, f"{server}/?view=store&store=gz-03&date={DAY}", "hq.aurora", world.PASSWORD)
    page.get_by_text("You do not have access to store gz-03.").wait_for()
    assert page.locator('[data-testid="stMetricValue"]').count() == 0


def test_installer_sees_node_health_only(
    server: str, page: Any, queries: Queries, world_db: tuple[Path, Path]
) -> None:
    world.fresh_heartbeats(world_db[0])
    log_in(page, server, "tech", world.PASSWORD)
    page.get_by_text("Needs attention first").wait_for()
    wait_idle(page)
    _shot(page, "installer")
    assert page.locator('[data-testid="stMetricValue"]').count() == 0
    alerts = page.locator('[data-testid="stAlert"]').all_inner_texts()
    assert len(alerts) == 2
    joined = "\n".join(alerts)
    assert (
        "bj-02 / node-a" in joined and "camera cam-a stalled" in joined and "outbox backlog 2,500" in joined
    )
    assert "gz-03 / node-a" in joined and "3 missing events" in joined
    nodes = {n.store_id: n for n in queries.nodes()}
    assert nodes["gz-03"].seq_missing == 3 and not nodes["gz-03"].online
    assert nodes["sh-01"].online
    log_in(page, f"{server}/?view=store&store=sh-01", "tech", world.PASSWORD)
    page.get_by_text("This view is not available to your role.").wait_for()
    assert page.locator('[data-testid="stMetricValue"]').count() == 0
