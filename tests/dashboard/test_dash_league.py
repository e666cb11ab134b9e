"""Brand HQ's league page with Streamlit's AppTest: each store's change against the period before, the
store that needs a look flagged in words, totals per brand and region, and a row that opens the store.

The world is the dashboard's test world with one change: Chaoyang Mall (bj-02) had 10 visitors on `DAY`
after 25 the day before, below 70% of its own trend, so the aggregator's league flags it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dash_world as world
import pytest
from streamlit.testing.v1 import AppTest

from aggregator.league import LeagueReport
from aggregator.queries import Queries
from dashboard import format as fmt
from dashboard.settings import ENV_DB, ENV_USERS
from dashboard.views.hq import flags

DAY = world.DAY.isoformat()
DROPPED = "bj-02"
PLANS = {**world.PLANS, (DROPPED, world.DAY): world.DayPlan(10, 5, 1, 6)}


@pytest.fixture(scope="module")
def world_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("dash_league")
    db = world.build_db(base / "aggregator.sqlite", plans=PLANS)
    users = world.write_users(base / "users.yaml")
    saved = {k: os.environ.get(k) for k in (ENV_DB, ENV_USERS)}
    os.environ[ENV_DB], os.environ[ENV_USERS] = str(db), str(users)
    yield db
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _report(db: Path, days: int, brand: str) -> LeagueReport:
    start = world.DAY - timedelta(days=days - 1)
    with Queries.open(db) as q:
        return q.league_report(start, world.DAY, datetime.now(UTC), brand=brand)


def _hq(username: str, **params: str) -> AppTest:
    return world.logged_in(username, **{"date": DAY, **params})


def _frame(at: AppTest, first: str, column: str) -> dict[str, list[object]]:
    """The one data frame of the page whose first column is `first` and that has `column`."""
    found = [d.value for d in at.dataframe if d.value.columns[0] == first and column in d.value.columns]
    assert len(found) == 1, [d.value.columns.tolist() for d in at.dataframe]
    return {str(c): list(found[0][c]) for c in found[0].columns}


def test_league_shows_the_change_and_flags_the_store_below_its_trend(world_db: Path) -> None:
    report = _report(world_db, 1, "aurora")
    by_id = {e.store_id: e for e in report.entries}
    assert by_id[DROPPED].outliers == ("below_own_trend",) and by_id["sh-01"].outliers == ()

    at = _hq("hq.aurora", period="day")
    league = _frame(at, "#", "Rank in brand")
    order = league["Store"]
    assert sorted(order) == ["bj-02", "sh-01"]
    row = {sid: i for i, sid in enumerate(order)}
    change = league["Visitors vs previous (%)"]
    # 10 after 25 visitors, and 59 after 35 (the aggregator's change, as the page writes it).
    assert change[row[DROPPED]] == fmt.change(by_id[DROPPED].change.visitors) == "-60.00%"
    assert change[row["sh-01"]] == fmt.change(by_id["sh-01"].change.visitors) == "+68.57%"
    # bj-02's browse rate: 5 of 10 after 12 of 25, +2.00 pp.
    assert league["Browse rate vs previous (pp)"][row[DROPPED]] == "+2.00 pp"
    assert league["Look at"][row[DROPPED]] == "below its own trend"
    assert league["Look at"][row["sh-01"]] == ""
    ranks = league["Rank in brand"]
    assert ranks[row[DROPPED]] == f"{by_id[DROPPED].brand_rank} of 2"

    brands = _frame(at, "Brand", "Stores to look at")
    assert brands["Brand"] == ["aurora"] and brands["Visitors"] == [59 + 10]
    assert brands["Visitors vs previous (%)"] == [fmt.change((69 - 60) / 60)]
    assert brands["Stores to look at"] == [1]
    regions = _frame(at, "Region", "Stores to look at")
    assert dict(zip(regions["Region"], regions["Visitors"], strict=True)) == {"East": 59, "North": 10}


def test_league_in_chinese_flags_missing_days(world_db: Path) -> None:
    # Nova's Tianhe Center has data on two of the week's seven days: five closed days without data.
    report = _report(world_db, 7, "nova")
    assert [(e.store_id, e.missing_days) for e in report.entries] == [("gz-03", 5)]
    at = _hq("hq.nova", period="week")
    league = _frame(at, "#", "品牌内排名")
    assert league["门店"] == ["gz-03"]
    assert league["需关注"] == ["5 天无数据"]
    assert league["品牌内排名"] == ["第 1 / 共 1 家"]


def test_selecting_a_league_row_opens_that_store(world_db: Path) -> None:
    at = _hq("hq.aurora", period="day")
    order = _frame(at, "#", "Rank in brand")["Store"]
    at.session_state["table_league"] = {"selection": {"rows": [order.index(DROPPED)], "columns": []}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.query_params["view"] == "store" and at.query_params["store"] == DROPPED
    assert {m.label: m.value for m in at.metric}["Visitors"] == "10"


def test_the_open_button_opens_the_chosen_store(world_db: Path) -> None:
    at = _hq("hq.aurora", period="day")
    at.selectbox(key="hq_store").select("sh-01")
    at.button(key="hq_open_store").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.query_params["store"] == "sh-01"
    assert {m.label: m.value for m in at.metric}["Visitors"] == "59"


def test_partial_flag_names_the_time_counted_to(world_db: Path) -> None:
    # A period whose last day is still in progress: the flag says up to when it is counted.
    entry = _report(world_db, 1, "aurora").entries[0]
    entry = replace(entry, partial=True, compared_until="15:30", missing_days=0, outliers=("below_brand",))
    assert flags("en", entry) == "well below its brand; last day in progress (to 15:30)"
    assert flags("zh", entry) == "明显低于品牌水平; 最后一天尚未结束（统计至 15:30）"
