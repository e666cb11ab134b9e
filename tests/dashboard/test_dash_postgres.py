"""The dashboard on a PostgreSQL database: the same world ingested into an SQLite file and into a PostgreSQL
database must give the same pages, figure for figure (store page, HQ league); a server that refuses the
password is reported on the page and by `showroom dashboard`, never with the password in it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dash_world as world
import pytest
from click.testing import CliRunner
from dash_server import CHROMIUM, dashboard_server, launch_chromium, log_in
from streamlit.testing.v1 import AppTest

from aggregator.queries import Queries
from dashboard import format as fmt
from dashboard.settings import ENV_DB, ENV_USERS
from dashboard.views.common import CHARTS_SHOWN
from showroom.cli import main
from tests.pgkit import PasswordCluster, PgDatabases

DAY = world.DAY.isoformat()
WRONG = "not-the-password"
READ_AT = re.compile(r"as of \d{4}-\d\d-\d\d \d\d:\d\d")
"""The minute a page was read at (the clock, not the data: two renders may fall in different minutes)."""


@dataclass(frozen=True)
class Worlds:
    sqlite: str
    postgresql: str
    users: Path


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory, pg_databases: PgDatabases) -> Iterator[Worlds]:
    """The test world, ingested at the same instant into an SQLite file and a PostgreSQL database."""
    base = tmp_path_factory.mktemp("dash_postgres")
    now = datetime.now(UTC)
    url = pg_databases.new()
    saved = {k: os.environ.get(k) for k in (ENV_DB, ENV_USERS)}
    try:
        found = Worlds(
            str(world.build_db(base / "aggregator.sqlite", now)),
            world.build_db(url, now),
            world.write_users(base / "users.yaml"),
        )
        os.environ[ENV_USERS] = str(found.users)
        yield found
    finally:
        pg_databases.release(url)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _page(db: str, username: str, **params: str) -> AppTest:
    """The page `username` sees after logging in, with the app reading `db`."""
    os.environ[ENV_DB] = db
    return world.logged_in(username, **params)


def _shown(at: AppTest) -> dict[str, Any]:
    """Everything of a page that carries figures: titles, metrics, texts, tables and the charts' data."""
    charts = at.session_state[CHARTS_SHOWN] if CHARTS_SHOWN in at.session_state else {}  # noqa: SIM401
    return {
        "titles": [t.value for t in at.title],
        "metrics": [(m.label, m.value, m.delta) for m in at.metric],
        "texts": [
            READ_AT.sub("as of (now)", str(e.value))
            for e in (*at.markdown, *at.caption, *at.error, *at.warning, *at.info)
        ],
        "frames": [d.value.to_dict("list") for d in at.dataframe],
        "tables": [t.value.to_dict("list") for t in at.table],
        "charts": [spec.get("data") for spec in charts.values()],
    }


def test_store_page_from_postgresql_equals_the_sqlite_one(worlds: Worlds) -> None:
    on_pg = _page(worlds.postgresql, "li.wei", date=DAY, period="day")
    assert not on_pg.error, [e.value for e in on_pg.error]
    with Queries.open(worlds.postgresql) as q:
        funnel = q.funnel("sh-01", world.DAY)
    metrics = {m.label: m.value for m in on_pg.metric}
    assert metrics["Visitors"] == fmt.count(funnel.today.visitors) == "59"
    assert metrics["Car browsers"] == "46" and metrics["Car entrants"] == "11"
    assert metrics["Browse rate"] == fmt.pct(funnel.today.browse_rate) == "77.97%"
    shown = _shown(on_pg)
    assert shown["charts"] and shown["frames"]  # the page drew its charts and tables
    assert shown == _shown(_page(worlds.sqlite, "li.wei", date=DAY, period="day"))


def test_hq_league_from_postgresql_equals_the_sqlite_one(worlds: Worlds) -> None:
    on_pg = _page(worlds.postgresql, "hq.aurora", date=DAY, period="week")
    assert not on_pg.error, [e.value for e in on_pg.error]
    with Queries.open(worlds.postgresql) as q:
        report = q.league_report(world.DAY.replace(day=14), world.DAY, datetime.now(UTC), brand="aurora")
    league = [d.value for d in on_pg.dataframe if "Rank in brand" in d.value.columns]
    assert len(league) == 1
    by_id = {e.store_id: e for e in report.entries}
    assert sorted(league[0]["Store"]) == sorted(by_id) == ["bj-02", "sh-01"]
    shown = dict(zip(league[0]["Store"], league[0]["Visitors"], strict=True))
    # The week's two days of each store: 59 + 35 visitors, 20 + 25.
    assert shown == {s: e.counts.visitors for s, e in by_id.items()} == {"sh-01": 94, "bj-02": 45}
    assert _shown(on_pg) == _shown(_page(worlds.sqlite, "hq.aurora", date=DAY, period="week"))


def test_showroom_dashboard_serves_a_postgresql_database_in_a_browser(worlds: Worlds, tmp_path: Path) -> None:
    """End to end: `showroom dashboard --db postgresql://...` starts, and a browser logs in and reads."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("SHOWROOM_REQUIRE_SERVICES") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api")
    with (
        dashboard_server(worlds.postgresql, worlds.users, tmp_path / "dashboard.log") as url,
        sync_api.sync_playwright() as p,
    ):
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1600}, locale="en-US")
            log_in(page, f"{url}/?date={DAY}&period=day", "li.wei", world.PASSWORD)
            page.get_by_text("Pudong Flagship — 2026-11-20").wait_for()
            labels = page.locator('[data-testid="stMetricLabel"]').all_inner_texts()
            values = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
            shown = {k.strip(): v.strip() for k, v in zip(labels, values, strict=True)}
        finally:
            browser.close()
    assert (shown["Visitors"], shown["Car browsers"], shown["Car entrants"]) == ("59", "46", "11")
    assert not list(tmp_path.glob("postgres*"))  # the URL was not taken for a file name


@pytest.fixture(scope="module")
def refusing_url(password_pg: PasswordCluster) -> str:
    """A database on a server that checks passwords, named with the wrong password."""
    right = password_pg.create_role("dash_reader", "dash-reader-pass", "dash_brand")
    return right.replace(":dash-reader-pass@", f":{WRONG}@")


def test_a_refused_password_is_said_on_the_page_without_the_password(
    worlds: Worlds, refusing_url: str
) -> None:
    at = _page(refusing_url, "li.wei", date=DAY)
    errors = [str(e.value) for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("The figures could not be loaded: cannot connect to")
    assert 'password authentication failed for user "dash_reader"' in errors[0]
    assert ":***@" in errors[0] and WRONG not in str(_shown(at)) and not at.metric


def test_showroom_dashboard_refuses_to_start_on_a_refused_password(worlds: Worlds, refusing_url: str) -> None:
    r = CliRunner().invoke(main, ["dashboard", "--db", refusing_url, "--users", str(worlds.users)])
    assert r.exit_code == 1, r.output
    assert 'password authentication failed for user "dash_reader"' in r.output
    assert WRONG not in r.output and "Traceback" not in r.output
