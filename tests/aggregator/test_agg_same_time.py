"""Comparisons at the same time of day: a day in progress against earlier days cut at the same local time.

Known visits are ingested as contract events through the real ingest path into a real database of
each storage backend; the
expected figures are counted from the plans below, not read back from the code under test.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.ingest import Ingestor, Message
from aggregator.queries import Queries
from aggregator.registry import parse_registry
from aggregator.storage import open_storage
from aggregator.synth import VisitPlan, funnel_day_plans, stamper_for, visit_events
from aggregator.timebuckets import zone
from edge.events import Envelope, to_json, topic_for
from showroom.cli import main
from tests.aggregator.conftest import NewDb

STORE = "sh-pudong-01"
TZ = "Asia/Shanghai"
TODAY = date(2026, 11, 20)  # a Friday
YESTERDAY = TODAY - timedelta(days=1)
LAST_WEEK = TODAY - timedelta(days=7)
REGISTRY = {
    "brands": [{"id": "aurora", "name": "Aurora Motors"}],
    "stores": [
        {
            "store_id": STORE,
            "name": "Pudong Flagship",
            "brand": "aurora",
            "region": "east",
            "timezone": TZ,
            "floor_size_m": [36, 24],
            "cars": [
                {"id": "car-01", "model_name": "Model S", "browse_zone_m": [[2, 3], [10, 3], [10, 9], [2, 9]]}
            ],
        }
    ],
}


def at(day: date, hh: int, mm: int, ss: int = 0) -> datetime:
    """A store-local wall time as a UTC instant."""
    return datetime.combine(day, time(hh, mm, ss), tzinfo=zone(TZ)).astimezone(UTC)


def morning(day: date, visitors: int, browsers: int, entrants: int, received: int) -> list[VisitPlan]:
    """Visits starting 08:30-09:05 local whose every event is over by 09:08: 2-minute visits, 20 s browses."""
    plans = []
    for i in range(visitors):
        start = at(day, 8, 30) + timedelta(seconds=i * (35 * 60 // max(visitors, 1)))
        plans.append(
            VisitPlan(
                start,
                120.0,
                browse_car="car-01" if i < browsers else None,
                browse_s=20.0 if i < browsers else 0.0,
                enter_car="car-01" if i < entrants else None,
                received=i < received,
            )
        )
    return plans


def later(day: date, visitors: int) -> list[VisitPlan]:
    """Visits from 10:00 local on, each a browser: they only count in whole-day figures."""
    return [
        VisitPlan(at(day, 10, 0) + timedelta(minutes=5 * i), 600.0, browse_car="car-01", browse_s=30.0)
        for i in range(visitors)
    ]


def ingest_events(db: str, events: list[Envelope]) -> str:
    """The events through the real ingest path into the fresh database `db`."""
    ing = Ingestor(open_storage(db))
    ing.load_registry(parse_registry(REGISTRY))
    now = datetime.now(UTC)
    ing.ingest([Message(topic_for(e), to_json(e), now) for e in events])
    ing.storage.close()
    return db


def ingest(db: str, plans_by_day: dict[date, list[VisitPlan]]) -> str:
    events: list[Envelope] = []
    for seed, plans in enumerate(plans_by_day.values()):
        stamper = stamper_for(STORE, seed=seed + 1)
        events += [e for p in plans for e in visit_events(stamper, p)]
    return ingest_events(db, events)


@pytest.fixture(scope="module")
def db(module_db: str) -> str:
    """One world, built once per backend and only read by the tests."""
    # The morning: today 15 visitors by 09:10, yesterday 10, last week 20 (and hundreds later those days).
    # One visitor today starts at 09:08 and browses until 09:12: a visitor at 09:10, not yet a browser.
    straddling = VisitPlan(at(TODAY, 9, 8), 900.0, browse_car="car-01", browse_s=235.0)
    return ingest(
        module_db,
        {
            TODAY: [*morning(TODAY, 14, 9, 3, 7), straddling, *later(TODAY, 40)],
            YESTERDAY: [*morning(YESTERDAY, 10, 5, 1, 4), *later(YESTERDAY, 120)],
            LAST_WEEK: [*morning(LAST_WEEK, 20, 16, 4, 10), *later(LAST_WEEK, 150)],
        },
    )


def test_morning_compares_with_the_same_time_of_day(db: str) -> None:
    with Queries.open(db) as q:
        f = q.funnel(STORE, TODAY, at(TODAY, 9, 10))
    print(f)
    assert f.partial and f.compared_until == "09:10"
    assert f.day_before_until == at(YESTERDAY, 9, 10) and f.week_before_until == at(LAST_WEEK, 9, 10)
    t = f.today
    assert (t.visitors, t.car_browsers, t.car_entrants, t.receptions) == (15, 9, 3, 7)
    assert f.day_before is not None and f.week_before is not None
    assert (f.day_before.visitors, f.day_before.car_browsers, f.day_before.car_entrants) == (10, 5, 1)
    assert (f.week_before.visitors, f.week_before.car_browsers, f.week_before.car_entrants) == (20, 16, 4)
    # Counts change as fractions: +50% and -25%, not -98%.
    assert f.dod.visitors == pytest.approx(15 / 10 - 1) and f.wow.visitors == pytest.approx(15 / 20 - 1)
    assert f.dod.car_browsers == pytest.approx(9 / 5 - 1) and f.dod.car_entrants == pytest.approx(2.0)
    # Rates change in percentage points: browse rate 60% today, 50% yesterday, 80% last week.
    assert f.dod.browse_rate_pp == pytest.approx(100 * (9 / 15 - 5 / 10))
    assert f.wow.browse_rate_pp == pytest.approx(100 * (9 / 15 - 16 / 20))
    assert f.dod.reception_rate_pp == pytest.approx(100 * (7 / 15 - 4 / 10))
    assert t.median_visit_s == pytest.approx(120.0)  # the 09:08 visit has not ended


def test_a_closed_day_compares_whole_days(db: str) -> None:
    with Queries.open(db) as q:
        f = q.funnel(STORE, TODAY, at(TODAY + timedelta(days=1), 8, 0))
        default_now = q.funnel(STORE, TODAY)
    assert not f.partial and f.compared_until is None
    assert f.today.visitors == 55 and f.today.car_browsers == 9 + 1 + 40
    assert f.day_before is not None and f.day_before.visitors == 130
    assert f.week_before is not None and f.week_before.visitors == 170
    assert f.dod.visitors == pytest.approx(55 / 130 - 1)
    assert default_now.today == f.today and not default_now.partial


def test_the_cut_follows_the_clock(db: str) -> None:
    with Queries.open(db) as q:
        nine = q.funnel(STORE, TODAY, at(TODAY, 9, 0))
        noon = q.funnel(STORE, TODAY, at(TODAY, 12, 0))
        with pytest.raises(ValueError, match="before 2026-11-20 begins"):
            q.funnel(STORE, TODAY, at(TODAY, 0, 0) - timedelta(seconds=1))
    # By 09:00 the morning visits started before 09:00 (every 2.5 min from 08:30: 12 of them).
    assert nine.today.visitors == 12 and nine.compared_until == "09:00"
    # At noon: 15 + the 10:00-12:00 visits (every 5 min from 10:00, started before 12:00: 24).
    assert noon.today.visitors == 15 + 24 and noon.today.car_browsers == 10 + 24 - 0
    assert noon.day_before is not None and noon.day_before.visitors == 10 + 24


def test_report_command_as_of(db: str) -> None:
    runner = CliRunner()
    base = ["aggregator", "report", "--db", str(db), "--store", STORE, "--date", TODAY.isoformat()]
    local = runner.invoke(main, [*base, "--as-of", "2026-11-20T09:10", "--format", "json"])
    assert local.exit_code == 0, local.output
    data = json.loads(local.output)
    funnel = data["funnel"]
    assert data["partial"] is True and funnel["compared_until"] == "09:10"
    assert funnel["today"]["visitors"] == 15
    assert funnel["day_before"]["visitors"] == 10 and funnel["week_before"]["visitors"] == 20
    assert funnel["dod"]["visitors"] == pytest.approx(0.5) and funnel["wow"]["visitors"] == pytest.approx(
        -0.25
    )
    assert funnel["dod"]["units"]["visitors"] == "fraction"
    assert funnel["dod"]["units"]["browse_rate_pp"] == "percentage_points"
    assert funnel["day_before_until"] == "2026-11-19T01:10:00.000Z"
    # The same instant with an offset, and in UTC.
    for stamp in ("2026-11-20T09:10:00+08:00", "2026-11-20T01:10:00Z"):
        r = runner.invoke(main, [*base, "--as-of", stamp, "--format", "json"])
        assert json.loads(r.output)["funnel"] == funnel
    text = runner.invoke(main, [*base, "--as-of", "2026-11-20T09:10"])
    assert "until 09:10" in text.output and "+50.00%" in text.output and "+10.00 pp" in text.output
    bad = runner.invoke(main, [*base, "--as-of", "yesterday-ish"])
    assert bad.exit_code == 2 and "--as-of" in bad.output and "yesterday-ish" in bad.output
    early = runner.invoke(main, [*base, "--as-of", "2026-11-19T23:00"])
    assert early.exit_code == 2 and "before 2026-11-20 begins" in early.output


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    visitors=st.integers(0, 40),
    browse=st.floats(0, 1),
    enter=st.floats(0, 1),
    receive=st.floats(0, 1),
    seed=st.integers(0, 10_000),
)
def test_replaying_a_whole_day_gives_its_rollup(
    new_db: NewDb,
    visitors: int,
    browse: float,
    enter: float,
    receive: float,
    seed: int,
) -> None:
    """The invariant behind every cut: the day's events replayed up to its end give exactly the funnel the
    ingest's rollup holds (the same rules, applied to the same facts)."""
    browsers = int(visitors * browse)
    entrants, received = int(browsers * enter), int(visitors * receive)
    stamper = stamper_for(STORE, seed=seed + 1)
    plans = funnel_day_plans(at(TODAY, 0, 0), visitors, browsers, entrants, received, seed=seed)
    db = ingest_events(new_db(), [e for p in plans for e in visit_events(stamper, p)])
    end = at(TODAY + timedelta(days=1), 0, 0)
    with Queries.open(db) as q:
        replayed = q.day_until(STORE, TODAY, end)
        stored = q.funnel(STORE, TODAY, end).today
    new_db.release(db)  # each example a fresh database
    if visitors == 0:
        assert replayed is None  # nothing stored that day
        return
    assert replayed == stored
    assert (stored.visitors, stored.car_browsers, stored.car_entrants, stored.receptions) == (
        visitors,
        browsers,
        entrants,
        received,
    )
