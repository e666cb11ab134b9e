"""The dashboard's data door for the new read models: the store page's one snapshot, HQ's league report,
per-zone heat and the history state, each checked against the user's scope first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dash_world as world
import pytest

from aggregator.queries import Queries
from dashboard.auth import AccessDeniedError, load_users
from dashboard.data import ScopedData, direct_fetch

AFTER = datetime.combine(world.DAY + timedelta(days=2), datetime.min.time(), UTC)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("dash_data")
    return world.build_db(base / "aggregator.sqlite"), world.write_users(base / "users.yaml")


def test_new_read_models_keep_to_the_users_scope(files: tuple[Path, Path]) -> None:
    db, users_file = files
    users = load_users(users_file)
    fetch = direct_fetch(db)
    manager = ScopedData(fetch, users["li.wei"])
    hq = ScopedData(fetch, users["hq.aurora"])
    installer = ScopedData(fetch, users["tech"])
    day = world.DAY

    page = manager.store_page("sh-01", day, day, day, AFTER)
    with Queries.open(db) as q:
        assert page.funnel == q.funnel("sh-01", day, AFTER)
    assert page.funnel.today.visitors == 59 and sum(h.visitors for h in page.hourly) == 59
    assert manager.history_loading("sh-01") is None
    zones = manager.zone_comparison("sh-01", day, day)
    assert {f.zone.zone_id for f in zones.zones} >= {"car-01.browse", "car-01.interior"}

    report = hq.league_report(day - timedelta(days=1), day, AFTER)
    assert {e.store_id for e in report.entries} == {"sh-01", "bj-02"}  # not Nova's gz-03
    assert [t.key for t in report.brands] == ["aurora"]
    assert report.brands[0].counts.visitors == 59 + 35 + 20 + 25
    assert {e.brand_size for e in report.entries} == {2}

    for call in (
        lambda: manager.store_page("bj-02", day, day, day, AFTER),
        lambda: manager.zone_comparison("gz-03", day, day),
        lambda: manager.history_loading("bj-02"),
        lambda: manager.league_report(day, day, AFTER),
        lambda: hq.league_report(day, day, AFTER, brand="nova"),
        lambda: hq.store_page("gz-03", day, day, day, AFTER),
        lambda: installer.store_page("sh-01", day, day, day, AFTER),
    ):
        with pytest.raises(AccessDeniedError):
            call()
