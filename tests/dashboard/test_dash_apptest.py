"""Page logic with Streamlit's AppTest, on a database filled by the aggregator's ingest from known events.

Every figure a page shows is compared with what `aggregator.queries.Queries` returns for the same
store and day; every role is checked against URLs that ask for more than it may see.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import dash_world as world
import numpy as np
import pytest
import streamlit as st
import vl_convert
from streamlit.testing.v1 import AppTest

from aggregator.ingest import Ingestor, Message
from aggregator.queries import Queries
from aggregator.storage import SqliteStorage
from aggregator.synth import heat_event, stamper_for
from dashboard import format as fmt
from dashboard.auth import AccessDeniedError, load_users
from dashboard.data import ScopedData, direct_fetch
from dashboard.heat import floor_heat
from dashboard.settings import ENV_DB, ENV_USERS
from dashboard.views.common import CHARTS_SHOWN
from edge.events import to_json, topic_for

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
DAY = world.DAY.isoformat()


@pytest.fixture(scope="module")
def world_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    base = tmp_path_factory.mktemp("dash_world")
    db = world.build_db(base / "aggregator.sqlite")
    users = world.write_users(base / "users.yaml")
    saved = {k: os.environ.get(k) for k in (ENV_DB, ENV_USERS)}
    os.environ[ENV_DB], os.environ[ENV_USERS] = str(db), str(users)
    yield db, users
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def queries(world_files: tuple[Path, Path]) -> Iterator[Queries]:
    q = Queries.open(world_files[0])
    yield q
    q.close()


def _app(**params: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=30)
    for key, value in params.items():
        at.query_params[key] = value
    return at


def _login(at: AppTest, username: str, password: str = world.PASSWORD) -> AppTest:
    at.run()
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    at.button[0].click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _charts(at: AppTest) -> list[dict[str, Any]]:
    """The Vega-Lite specs of the charts this rerun drew, in page order; each is on the page as an image."""

    def walk(node: Any) -> Iterator[Any]:
        yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    specs = list(at.session_state[CHARTS_SHOWN].values()) if CHARTS_SHOWN in at.session_state else []
    images = [e for e in walk(at._tree) if getattr(e, "type", "") == "image"]
    assert len(images) == len(specs)
    for image in images:
        assert image.proto.imgs[0].url.startswith("data:image/svg+xml;base64,")
    return specs


def _texts(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.caption, *at.error, *at.warning, *at.success, *at.info)]
    return "\n".join(str(p) for p in parts)


# -- before log-in --------------------------------------------------------------------------------


def test_nothing_before_login(world_files: tuple[Path, Path]) -> None:
    at = _app(view="store", store="sh-01", date=DAY)
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Log in"]
    assert len(at.metric) == 0 and len(at.dataframe) == 0 and len(at.table) == 0
    assert "Pudong" not in _texts(at)


def test_the_page_replaces_the_log_in_form_in_the_same_run(world_files: tuple[Path, Path]) -> None:
    at = _login(_app(date=DAY), "li.wei")
    assert [x.value for x in at.title] == ["Pudong Flagship — 2026-11-20"]  # no "Showroom Vision" form title
    assert "Log in" not in [b.label for b in at.button]
    assert not [w for w in at.text_input if w.key in ("login_username", "login_password")]
    at.run()  # and the next run (any click) shows the same page
    assert [x.value for x in at.title] == ["Pudong Flagship — 2026-11-20"]


def test_wrong_password_shows_nothing(world_files: tuple[Path, Path]) -> None:
    at = _login(_app(store="sh-01", date=DAY), "li.wei", "not-the-password")
    assert [e.value for e in at.error] == ["Unknown username or wrong password."]
    assert len(at.metric) == 0
    assert "username" not in at.session_state


def test_repeated_failures_lock_the_username(world_files: tuple[Path, Path]) -> None:
    at = _app()
    at.run()
    try:
        for _ in range(5):
            at.text_input(key="login_username").input("hq.nova")
            at.text_input(key="login_password").input("wrong-password")
            at.button[0].click()
            at.run()
        at.text_input(key="login_password").input(world.PASSWORD)
        at.button[0].click()
        at.run()
        assert "Too many failed attempts" in at.error[0].value
        assert len(at.metric) == 0 and "username" not in at.session_state
    finally:
        st.cache_resource.clear()  # the lock is process-wide: release it for the other tests


def test_brand_hq_of_other_brand_sees_its_silent_store(world_files: tuple[Path, Path]) -> None:
    # hq.nova prefers Chinese: the page opens in Chinese after log-in.
    at = _login(_app(date=DAY), "hq.nova")
    silent = _table_with(at, "最后数据")
    assert silent["门店"].tolist() == ["gz-03"]
    assert silent["原因"].tolist() == ["数据中断"]
    assert list(at.dataframe[0].value["门店"]) == ["gz-03"]


# -- store manager --------------------------------------------------------------------------------


def test_store_manager_figures_equal_the_aggregator(queries: Queries) -> None:
    at = _login(_app(date=DAY), "li.wei")
    funnel = queries.funnel("sh-01", world.DAY)
    shown = _metrics(at)
    assert shown["Visitors"] == "59" == fmt.count(funnel.today.visitors)
    assert shown["Car browsers"] == "46" == fmt.count(funnel.today.car_browsers)
    assert shown["Car entrants"] == "11" == fmt.count(funnel.today.car_entrants)
    assert shown["Browse rate"] == "77.97%" == fmt.pct(funnel.today.browse_rate)
    assert shown["Car-entry rate"] == "23.91%" == fmt.pct(funnel.today.car_entry_rate)
    assert shown["Reception rate"] == fmt.pct(funnel.today.reception_rate)
    text = _texts(at)
    for attr in ("visitors", "car_browsers", "car_entrants"):
        assert f"{fmt.change(getattr(funnel.dod, attr))}] :gray[day-over-day]" in text
        assert f"{fmt.change(getattr(funnel.wow, attr))}] :gray[week-over-week]" in text
    assert "+68.57%" in text and "+39.39%" in text and "+57.14%" in text
    assert at.title[0].value == f"Pudong Flagship — {DAY}"
    assert at.query_params["store"] == "sh-01"
    # A past day is named, not called "today"; rates change in percentage points, labelled.
    assert "Funnel of 2026-11-20" in [h.value for h in at.subheader]
    assert funnel.day_before is not None and funnel.week_before is not None
    for attr in ("browse_rate", "car_entry_rate", "reception_rate"):
        now, before = getattr(funnel.today, attr), getattr(funnel.day_before, attr)
        assert f"{100 * (now - before):+.2f} pp] :gray[day-over-day]" in text
        week = getattr(funnel.week_before, attr)
        assert f"{100 * (now - week):+.2f} pp] :gray[week-over-week]" in text
    assert ":red[▼ -16.32 pp] :gray[day-over-day]" in text  # browse rate 77.97% after 94.29%


def test_an_unchanged_figure_is_neither_up_nor_down() -> None:
    from dashboard.views.store import change_line, points_line

    assert change_line("en", -0.000001, "store.vs_yesterday") == ":gray[■ +0.00%] :gray[day-over-day]"
    assert points_line("en", 0.5, 0.5, "store.vs_yesterday") == ":gray[■ +0.00 pp] :gray[day-over-day]"
    assert points_line("en", 0.25, 0.2, "store.vs_yesterday") == ":green[▲ +5.00 pp] :gray[day-over-day]"
    assert points_line("en", None, 0.2, "store.vs_yesterday") == ":gray[– day-over-day]"


BEFORE_HISTORY = " is before this store's history, which starts on 2026-11-13: showing {today}."


@pytest.mark.parametrize(
    ("asked", "message"),
    [
        (
            "1999-01-01",
            "1999-01-01 is before this store's history, which starts on 2026-11-13: showing {today}.",
        ),
        (
            "2026-11-12",
            "2026-11-12 is before this store's history, which starts on 2026-11-13: showing {today}.",
        ),
        ("2099-01-01", "2099-01-01 has not happened yet in the store's time zone: showing {today}."),
        ("20-11-2026", "20-11-2026 is not a date (expected YYYY-MM-DD): showing {today}."),
    ],
)
def test_dates_outside_the_history_are_refused(asked: str, message: str) -> None:
    today = datetime.now(ZoneInfo(world.TZ)).date().isoformat()
    at = _login(_app(date=asked), "li.wei")
    assert [e.value for e in at.error] == [message.format(today=today)]
    assert at.title[0].value == f"Pudong Flagship — {today}"
    assert at.query_params["date"] == today


def test_today_shows_the_display_cars_live_and_a_past_day_does_not() -> None:
    today = _login(_app(), "li.wei")
    assert "Display cars this hour (live)" in [h.value for h in today.subheader]
    assert "Today's funnel" in [h.value for h in today.subheader]
    # The test world has no heat this hour: said in words, with the hour's start in the store's zone.
    assert any(i.value.startswith("No one near the display cars since ") for i in today.info)
    assert any("(Asia/Shanghai)" in i.value for i in today.info)
    # Nor heat in the last minutes: visitors per zone now are unknown, and said so.
    assert "In each zone now (live)" in [h.value for h in today.subheader]
    assert any(i.value.startswith("No floor data from the nodes in the last 5 minutes") for i in today.info)
    past = _login(_app(date=DAY), "li.wei")
    assert "Display cars this hour (live)" not in [h.value for h in past.subheader]
    assert "In each zone now (live)" not in [h.value for h in past.subheader]


def test_today_shows_visitors_in_each_zone_now_and_how_fresh(
    world_files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = world.build_db(tmp_path / "live.sqlite")
    storage = SqliteStorage(db)
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    # A second node's last full minute: 0.25 m cells, (10, 14) around car-01 (2.6 m, 3.6 m), (128, 80) at
    # the welcome desk (32.1 m, 20.1 m): two visitors around the car and one at the desk on average.
    heat = heat_event(stamper_for("sh-01", "node-b", seed=42), minute, [(10, 14, 120.0), (128, 80, 60.0)], 3)
    assert Ingestor(storage).ingest([Message(topic_for(heat), to_json(heat), heat.ts)]).stored == 1
    storage.close()
    monkeypatch.setenv(ENV_DB, str(db))
    at = _login(_app(), "li.wei")
    now_table = _table_with(at, "Visitors now")
    shown = dict(zip(now_table["Zone"], now_table["Visitors now"], strict=True))
    assert list(now_table["Zone"])[:2] == ["Model S Sedan: around", "Welcome desk"]
    assert shown["Model S Sedan: around"] == "2.0" and shown["Welcome desk"] == "1.0"
    assert shown["Model X SUV: inside"] == "0.0"
    assert list(now_table["Kind"])[:2] == ["Around a car", "Reception"]
    local = fmt.local_time(minute, world.TZ)
    caption = next(c.value for c in at.caption if "the latest the nodes reported" in c.value)
    assert f"during the minute from {local}" in caption and "Whole floor: 3.0" in caption
    at.session_state["lang"] = "zh"
    at.run()
    zh_table = _table_with(at, "当前访客")
    assert list(zh_table["区域"])[:2] == ["Model S Sedan：周围", "Welcome desk"]
    assert list(zh_table["类型"])[:2] == ["展车周围", "接待区"]


def test_a_league_of_several_brands_says_scores_compare_within_a_brand() -> None:
    group = _login(_app(date=DAY, period="day"), "hq.group")
    assert (
        "Health scores are measured against each store's own brand (its TOP: the 90th percentile of the "
        "brand's stores), so compare them within a brand. Stores per brand: aurora 2, nova 1."
    ) in _texts(group)
    one_brand = _login(_app(date=DAY, period="day"), "hq.aurora")
    assert "Stores per brand" not in _texts(one_brand)


def test_an_empty_day_says_so_in_words(queries: Queries) -> None:
    empty = world.DAY - timedelta(days=3)
    assert queries.funnel("sh-01", empty).today.visitors == 0
    at = _login(_app(date=empty.isoformat(), period="day"), "li.wei")
    assert _charts(at) == [], "no empty axes"
    infos = [i.value for i in at.info]
    assert infos.count("No data for this period.") == 2  # hourly traffic, display cars
    assert "No heat recorded for this period." in infos


def test_store_manager_car_ranking_equals_the_aggregator(queries: Queries) -> None:
    at = _login(_app(date=DAY, period="day"), "li.wei")
    cars = queries.car_ranking("sh-01", world.DAY, world.DAY)
    table = _table_with(at, "Ignored")
    assert list(table["Car"]) == [c.car_id for c in cars] == ["car-01", "car-02", "car-03"]
    assert list(table["Browsers"]) == [fmt.count(c.browsers) for c in cars] == ["30", "16", "0"]
    assert list(table["Entries"]) == [fmt.count(c.entries) for c in cars]
    assert list(table["Total dwell"]) == [fmt.seconds(c.dwell_total_s) for c in cars]
    assert list(table["Median dwell"])[-1] == "–"  # nobody browsed car-03
    assert list(table["Ignored"]) == ["", "", "⚠"]
    hourly, heatmap, ranking, radar = _charts(at)
    hours = queries.hourly_traffic("sh-01", world.DAY)
    bars = hourly["layer"][0]["data"]["values"]
    assert [(r["hour"], r["visitors"]) for r in bars] == [(h.local_hour, h.visitors) for h in hours]
    # The heatmap: the grid's cells (same total person-seconds) under each car's outline and model name.
    layers = {layer["name"]: layer for layer in heatmap["layer"]}
    assert layers["heat"]["mark"]["type"] == "image"
    heat = queries.heatmap("sh-01", world.DAY, world.DAY)
    # The floor apart from the time inside car-01 (its interior, 4-8.8 m x 5-7 m, holds some of the heat).
    store = queries.store("sh-01")
    split = floor_heat(heat.grid, heat.cell_m, {c.id: c.interior_zone_m for c in store.cars})
    assert split.inside_s["car-01"] > 0 and split.inside_s["car-02"] == 0
    assert split.floor.sum() + sum(split.inside_s.values()) == pytest.approx(float(heat.grid.sum()))
    legend = layers["heat_legend"]["encoding"]["color"]
    assert legend["scale"]["domain"][-1] == pytest.approx(split.colour_top_s)
    assert legend["title"] == "person-s per cell (colour clipped at the 99th percentile)"
    png = base64.b64decode(layers["heat"]["data"]["values"][0]["url"].split(",", 1)[1])
    alpha = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)[..., 3]
    k = alpha.shape[1] // heat.grid.shape[1]
    assert alpha.shape == (heat.grid.shape[0] * k, heat.grid.shape[1] * k)
    assert (alpha[k // 2 :: k, k // 2 :: k] > 0).tolist() == (split.floor > 0).tolist()  # a cell per cell
    inside = _table_with(at, "Person-minutes inside")
    assert inside["Model"].tolist()[0] == "Model S Sedan"
    assert inside["Person-minutes inside"].tolist()[0] == fmt.count(split.inside_s["car-01"] / 60)
    labels = {r["label"] for r in layers["car_labels"]["data"]["values"]}
    assert labels == {c["model_name"] for c in world.CARS}
    outlines = {r["group"] for r in layers["car_outline"]["data"]["values"]}
    assert outlines == {"car-01", "car-02", "car-03"}
    assert {r["car"] for r in ranking["data"]["values"]} == {c.model_name for c in cars}
    # The store's own health for the period, against its brand.
    health = queries.health("sh-01", world.DAY, world.DAY)
    assert health.score is not None
    assert _metrics(at)["Health score"] == f"{health.score:.1f}"
    assert list(_table_with(at, "% of TOP")["Score"]) == [f"{d.score:.1f}" for d in health.dimensions]
    # The radar in % of TOP, uncapped, beside the table's uncapped figure; the score is capped at 100.
    store_line = [r for r in radar["layer"][-1]["data"]["values"] if r["series"] == "This store"]
    of_top = [100 * (d.value or 0.0) / d.brand_top if d.brand_top else 0.0 for d in health.dimensions]
    assert [r["score"] for r in store_line][:-1] == [round(v, 1) for v in of_top]
    assert list(_table_with(at, "% of TOP")["% of TOP"]) == [
        "–" if d.value is None or not d.brand_top else f"{100 * d.value / d.brand_top:,.0f}%"
        for d in health.dimensions
    ]
    assert [min(100.0, v) for v in of_top] == pytest.approx([d.score or 0.0 for d in health.dimensions])
    legend = radar["layer"][-1]["encoding"]["color"]["scale"]["domain"]
    assert legend[0] == f"Brand TOP (90th percentile of {health.brand_stores} stores)"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"store": "bj-02"}, "You do not have access to store bj-02."),
        ({"store": "gz-03", "view": "store"}, "You do not have access to store gz-03."),
        ({"store": "no-such-store"}, "You do not have access to store no-such-store."),
        ({"view": "hq"}, "This view is not available to your role."),
        ({"view": "installer"}, "This view is not available to your role."),
    ],
)
def test_store_manager_cannot_reach_more_by_url(params: dict[str, str], message: str) -> None:
    at = _login(_app(date=DAY, **params), "li.wei")
    assert [e.value for e in at.error] == [message]
    assert len(at.metric) == 0 and len(at.table) == 0 and len(at.dataframe) == 0
    assert not _charts(at)


def test_session_cannot_be_switched_to_another_store(world_files: tuple[Path, Path]) -> None:
    at = _login(_app(date=DAY), "li.wei")
    assert at.selectbox(key="pick_store").options == ["Pudong Flagship (sh-01)"]
    at.query_params["store"] = "bj-02"
    at.run()
    assert [e.value for e in at.error] == ["You do not have access to store bj-02."]
    assert len(at.metric) == 0


def test_switch_to_chinese(queries: Queries) -> None:
    at = _login(_app(date=DAY), "li.wei")
    at.session_state["lang"] = "zh"
    at.run()
    shown = _metrics(at)
    assert shown["进店人数"] == "59"
    assert shown["浏览率"] == "77.97%"
    assert "日环比" in _texts(at)
    assert at.sidebar.button[0].label == "退出登录"


def test_logout_returns_to_login(world_files: tuple[Path, Path]) -> None:
    at = _login(_app(date=DAY), "li.wei")
    at.button(key="logout").click()
    at.run()
    assert len(at.metric) == 0
    assert [b.label for b in at.button] == ["Log in"]


# -- brand HQ -------------------------------------------------------------------------------------


def test_brand_hq_league_and_health_equal_the_aggregator(queries: Queries) -> None:
    at = _login(_app(date=DAY, period="day"), "hq.aurora")
    league = queries.league(world.DAY, world.DAY, brand="aurora")
    frame = at.dataframe[0].value
    assert list(frame["Store"]) == [r.store.store_id for r in league] == ["sh-01", "bj-02"]
    assert list(frame["Visitors"]) == [r.figures.visitors for r in league] == [59, 20]
    assert list(frame["Browse rate"]) == [fmt.pct(r.figures.browse_rate) for r in league]
    assert list(frame["Health score"]) == [round(r.health, 1) for r in league if r.health is not None]

    health = queries.health("sh-01", world.DAY, world.DAY)
    assert health.score is not None
    assert _metrics(at)["Health score"] == f"{health.score:.1f}"
    dims = at.table[0].value
    assert list(dims["Dimension"]) == [
        "Traffic acquisition",
        "Store activity",
        "Store attractiveness",
        "Car-entry rate",
        "Reception rate",
        "Store heat",
    ]
    assert list(dims["Score"]) == [f"{d.score:.1f}" for d in health.dimensions]
    assert dims["This store"][1] == fmt.pct(health.dimensions[1].value)
    assert dims["Brand TOP"][1] == fmt.pct(health.dimensions[1].brand_top)


def test_brand_hq_sort_and_region_filter(queries: Queries) -> None:
    at = _login(_app(date=DAY, period="day"), "hq.aurora")
    at.selectbox(key="hq_sort").select("visitors")
    at.run()
    assert list(at.dataframe[0].value["Visitors"]) == [59, 20]
    at.selectbox(key="hq_region").select("north")
    at.run()
    assert list(at.dataframe[0].value["Store"]) == ["bj-02"]


def test_brand_hq_sees_silent_store_only_of_own_brand(queries: Queries) -> None:
    # gz-03 (brand nova) is silent, but aurora HQ must not learn about it.
    silent = queries.silent_stores(datetime.now(UTC), timedelta(hours=2))
    assert [s.store_id for s in silent] == ["gz-03"]
    at = _login(_app(date=DAY), "hq.aurora")
    assert "gz-03" not in _texts(at)
    assert "Every store is reporting." in _texts(at)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"view": "store", "store": "gz-03"}, "You do not have access to store gz-03."),
        ({"view": "installer"}, "This view is not available to your role."),
    ],
)
def test_brand_hq_cannot_reach_other_brands(params: dict[str, str], message: str) -> None:
    at = _login(_app(date=DAY, **params), "hq.aurora")
    assert [e.value for e in at.error] == [message]
    assert len(at.metric) == 0


def test_brand_hq_store_view_of_own_brand(queries: Queries) -> None:
    at = _login(_app(date=DAY, view="store", store="bj-02"), "hq.aurora")
    assert _metrics(at)["Visitors"] == fmt.count(queries.funnel("bj-02", world.DAY).today.visitors) == "20"


def _heatmap_svg(at: AppTest) -> str:
    """The heatmap as the page shows it: the SVG picture whose text names the floor plan's legend."""

    def walk(node: Any) -> Iterator[Any]:
        yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    svgs = [
        base64.b64decode(e.proto.imgs[0].url.split(",", 1)[1]).decode("utf-8")
        for e in walk(at._tree)
        if getattr(e, "type", "") == "image"
    ]
    [svg] = [s for s in svgs if "person-s per cell" in s]
    return svg


def _teal_share(spec: dict[str, Any]) -> float:
    """The share of the drawn heatmap's pixels in the floor drawing's colour."""
    png = vl_convert.vegalite_to_png(spec)
    rgb = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    b, g, r = world.FLOOR_IMAGE_BGR
    near = (np.abs(rgb.astype(int) - np.array([b, g, r])).sum(axis=2)) < 30
    return float(near.mean())


def test_heatmap_draws_doors_staff_areas_and_reception_over_the_floor_outline(queries: Queries) -> None:
    at = _login(_app(date=DAY, period="day"), "li.wei")
    svg = _heatmap_svg(at)
    plan = queries.store("sh-01").plan
    assert plan.doors[0].name == "Main entrance" and plan.image_extent_m is None
    for text in world.PLAN_LABELS:
        assert f">{text}</text>" in svg, text
    # The staff area's dashed outline and the door's thick line, in their legend colours.
    assert 'stroke="#4b5563"' in svg and 'stroke-dasharray="6,3"' in svg
    assert 'stroke="#dc2626" stroke-width="6"' in svg
    assert "No floor drawing is configured" in _texts(at)
    spec = at.session_state[CHARTS_SHOWN]["chart_heatmap"]
    doors = {layer["name"]: layer for layer in spec["layer"]}["plan_doors"]["data"]["values"]
    assert [(r["x"], r["y"]) for r in doors] == [(14, 24), (18, 24), (0, 10), (0, 13)]
    assert ">side-door</text>" not in svg and ">back-office</text>" not in svg
    assert _teal_share(spec) == 0.0


def test_zones_ranked_against_the_period_before_equal_the_aggregator(queries: Queries) -> None:
    at = _login(_app(date=DAY, period="day"), "li.wei")
    table = _table_with(at, "Rank before")
    comparison = queries.zone_comparison("sh-01", world.DAY, world.DAY)
    figures = comparison.zones
    # Every car around and inside, the welcome desk and the staff area; the heat lies around car-01.
    assert len(figures) == 8 and figures[0].zone.zone_id == "car-01.browse"
    assert list(table["Zone"])[:2] == ["Model S Sedan: around", "Model S Sedan: inside"]
    assert "Welcome desk" in list(table["Zone"]) and "Reception" in list(table["Kind"])
    assert list(table["Person-minutes"]) == [fmt.count(f.person_s / 60) for f in figures]
    assert list(table["Share of the floor"]) == [fmt.pct(f.share) for f in figures]
    assert list(table["Change"]) == [fmt.change(f.change) or "–" for f in figures]
    assert figures[0].previous_person_s and figures[0].change is not None  # the day before had heat too
    assert "from 2026-11-20 to 2026-11-20, ranked, beside 2026-11-19 to 2026-11-19" in _texts(at)


def test_heatmap_draws_the_floor_drawing_underneath(queries: Queries) -> None:
    at = _login(_app(date=DAY, period="day", view="store", store="bj-02"), "hq.aurora")
    drawing = queries.floor_image("bj-02")
    assert drawing is not None
    svg = _heatmap_svg(at)
    assert base64.b64encode(drawing).decode("ascii") in svg
    spec = at.session_state[CHARTS_SHOWN]["chart_heatmap"]
    names = [layer["name"] for layer in spec["layer"]]
    assert names.index("floor_image") < names.index("heat")  # under the heat
    # Most of the picture is the drawing's colour (the heat covers a few square metres of 864).
    assert _teal_share(spec) > 0.3
    assert "the store's floor drawing" in _texts(at)


# -- installer ------------------------------------------------------------------------------------


def test_installer_sees_nodes_worst_first_and_no_visitor_figures(
    queries: Queries, world_files: tuple[Path, Path]
) -> None:
    world.fresh_heartbeats(world_files[0])
    at = _login(_app(), "tech")
    assert len(at.metric) == 0
    attention = [e.value for e in at.error] + [w.value for w in at.warning]
    assert attention[0].startswith("**bj-02 / node-a**") or attention[0].startswith("**gz-03 / node-a**")
    joined = "\n".join(attention)
    assert "camera cam-a stalled" in joined
    assert "outbox backlog 2,500" in joined
    assert "3 missing events" in joined
    assert "sh-01" not in joined  # healthy node: not in the attention list
    nodes = at.dataframe[0].value
    assert sorted(nodes["Store"]) == sorted(n.store_id for n in queries.nodes())
    gz = list(nodes["Store"]).index("gz-03")
    assert list(nodes["Sequence gaps"])[gz] == "3"
    assert list(nodes["Status"])[gz] == "offline"
    assert set(nodes["Software"]) == {"0.1.0"} and set(nodes["Detector model"]) == {"yolox-tiny"}


@pytest.mark.parametrize("view", ["store", "hq"])
def test_installer_cannot_open_visitor_views(view: str) -> None:
    at = _login(_app(view=view, store="sh-01", date=DAY), "tech")
    assert [e.value for e in at.error] == ["This view is not available to your role."]
    assert len(at.metric) == 0


# -- the scope itself, without the UI -------------------------------------------------------------


def test_scoped_data_refuses_outside_scope(world_files: tuple[Path, Path]) -> None:
    db, users_file = world_files
    users = load_users(users_file)
    fetch = direct_fetch(db)
    manager = ScopedData(fetch, users["li.wei"])
    hq = ScopedData(fetch, users["hq.aurora"])
    installer = ScopedData(fetch, users["tech"])

    assert [s.store_id for s in manager.stores()] == ["sh-01"]
    assert manager.funnel("sh-01", world.DAY).today.visitors == 59
    for call in (
        lambda: manager.funnel("bj-02", world.DAY),
        lambda: manager.heatmap("gz-03", world.DAY, world.DAY),
        lambda: manager.nodes(["bj-02"]),
        lambda: manager.league(world.DAY, world.DAY),
        lambda: hq.funnel("gz-03", world.DAY),
        lambda: hq.league(world.DAY, world.DAY, brand="nova"),
        lambda: installer.funnel("sh-01", world.DAY),
        lambda: installer.car_ranking("sh-01", world.DAY, world.DAY),
    ):
        with pytest.raises(AccessDeniedError):
            call()
    assert [s.store_id for s in hq.stores()] == ["bj-02", "sh-01"]
    assert {n.store_id for n in installer.nodes()} == {"sh-01", "bj-02", "gz-03"}
    assert {n.store_id for n in manager.nodes()} == {"sh-01"}


def test_unreadable_database_is_reported_not_crashed(world_files: tuple[Path, Path], tmp_path: Path) -> None:
    broken = tmp_path / "not-an-aggregator.sqlite"
    broken.write_bytes(b"this is not a database")
    os.environ[ENV_DB] = str(broken)
    try:
        at = _login(_app(date=DAY), "li.wei")
        assert at.error and at.error[0].value.startswith("The figures could not be loaded:")
        assert len(at.metric) == 0
    finally:
        os.environ[ENV_DB] = str(world_files[0])


# -- door-count audits ----------------------------------------------------------------------------


def test_store_manager_sees_how_accurate_the_last_audit_found_the_counts(queries: Queries) -> None:
    last = queries.audits("sh-01")[0]
    assert (last.manual_in, last.system_in) == (world.AUDIT_SH01_MANUAL_IN, 9)  # one visit every 7 minutes
    at = _login(_app(date=DAY), "li.wei")
    expected = (
        f"Door counts were {fmt.pct(last.accuracy)} accurate at the last audit ({DAY}, counted by Zhang Min)."
    )
    assert expected in [c.value for c in at.caption]
    assert fmt.pct(last.accuracy) == "90.00%"


def test_brand_hq_sees_stores_whose_audit_is_stale_or_missing(queries: Queries) -> None:
    at = _login(_app(date=DAY, period="day"), "hq.aurora")
    audits = _table_with(at, "Last audit")
    due = "0 stores never audited, 1 with an out-of-date audit; the first 1:"
    assert due in [c.value for c in at.caption]
    assert audits["Store"].tolist() == ["bj-02"]  # sh-01 was audited on DAY; gz-03 is another brand's
    assert audits["Reason"].tolist() == ["audit older than 90 days"]
    bj = queries.audits("bj-02")[0]
    # The audit's day in the store's own time zone (as on the store page), not in UTC.
    local_day = bj.end.astimezone(ZoneInfo(world.TZ)).date()
    assert local_day != bj.end.date()
    assert audits["Last audit"].tolist() == [local_day.isoformat()]
    assert audits["Accuracy then"].tolist() == [fmt.pct(bj.accuracy)]
    nova = _login(_app(date=DAY), "hq.nova")
    assert _table_with(nova, "上次审核")["门店"].tolist() == ["gz-03"]
    assert _table_with(nova, "上次审核")["原因"].tolist() == ["从未审核"]


def _table_with(at: AppTest, column: str) -> Any:
    """The one table (or data frame) of the page that has `column`."""
    tables = [*at.table, *at.dataframe]
    found = [tb.value for tb in tables if column in tb.value.columns]
    assert len(found) == 1, [tb.value.columns.tolist() for tb in tables]
    return found[0]


# -- log-in through the deployment's identity provider (OpenID Connect, Streamlit's [auth]) ---------------

IDP_SECRETS = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "a-test-cookie-secret",
    "client_id": "showroom-dashboard",
    "client_secret": "not-a-real-secret",
    "server_metadata_url": "https://idp.dealer.example/.well-known/openid-configuration",
}


def _idp_app(identity: dict[str, Any] | None, **params: str) -> AppTest:
    at = _app(**params)
    at.secrets["auth"] = IDP_SECRETS
    if identity is not None:
        at.user = identity
    return at


def test_without_an_identity_provider_an_identity_is_not_trusted(world_files: tuple[Path, Path]) -> None:
    at = _app(date=DAY)
    at.user = {"is_logged_in": True, "email": "li.wei@dealer.example"}
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Log in"]  # the password form only, nothing shown
    assert len(at.metric) == 0 and "Pudong" not in _texts(at)


def test_identity_provider_log_in_is_offered_beside_the_password(world_files: tuple[Path, Path]) -> None:
    at = _idp_app(None, date=DAY)
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Log in with your company account", "Log in"]
    assert len(at.metric) == 0
    try:
        import authlib  # noqa: F401
    except ImportError:
        # Configured but not installed: a clear message, and the password still works.
        at.button(key="login_idp").click()
        at.run()
        assert not at.exception
        assert "install showroom-vision[idp]" in at.error[0].value


def test_identity_provider_user_gets_their_entrys_scope(
    world_files: tuple[Path, Path], queries: Queries
) -> None:
    # The provider's e-mail (any case) picks li.wei's entry: a store manager of sh-01 only.
    at = _idp_app({"is_logged_in": True, "email": "li.wei@DEALER.example", "email_verified": True}, date=DAY)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [x.value for x in at.title] == ["Pudong Flagship — 2026-11-20"]
    assert _metrics(at)["Visitors"] == fmt.count(queries.funnel("sh-01", world.DAY).today.visitors)
    tampered = _idp_app({"is_logged_in": True, "email": "li.wei@dealer.example"}, date=DAY, store="bj-02")
    tampered.run()
    assert [e.value for e in tampered.error] == ["You do not have access to store bj-02."]
    assert len(tampered.metric) == 0
    # An entry without a password logs in only this way.
    zhao = _idp_app({"is_logged_in": True, "email": "zhao@dealer.example"}, date=DAY)
    zhao.run()
    assert [x.value for x in zhao.title] == ["Chaoyang Mall — 2026-11-20"]
    password = _idp_app(None, date=DAY)
    password.run()
    password.text_input(key="login_username").input("zhao")
    password.text_input(key="login_password").input(world.PASSWORD)
    next(b for b in password.button if b.label == "Log in").click()
    password.run()
    assert [e.value for e in password.error] == ["Unknown username or wrong password."]


@pytest.mark.parametrize(
    "identity",
    [
        {"is_logged_in": True, "email": "stranger@elsewhere.example"},
        {"is_logged_in": True, "email": "li.wei@dealer.example", "email_verified": False},
    ],
)
def test_identity_provider_user_without_an_entry_sees_nothing(
    world_files: tuple[Path, Path], identity: dict[str, Any]
) -> None:
    at = _idp_app(identity, date=DAY)
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        f"{identity['email']} has no access to this dashboard: ask your administrator to add it."
    ]
    assert [b.label for b in at.button] == ["Log out"]
    assert len(at.metric) == 0 and len(at.table) == 0 and "Pudong" not in _texts(at)
