"""HQ's league from known events: change against the period before, ranks within a brand with its size,
outliers, missing and partial days, and totals per brand and region."""

from __future__ import annotations

import gc
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

import pytest

from aggregator.collector import collection_paused
from aggregator.ingest import Ingestor, Message
from aggregator.league import Counts
from aggregator.partial_day import cutoff_on
from aggregator.queries import FunnelFigures, PeriodFigures, Queries
from aggregator.registry import parse_registry
from aggregator.storage import open_storage
from aggregator.storage.records import PeriodSumRow
from aggregator.synth import VisitPlan, stamper_for, visit_events
from aggregator.timebuckets import zone
from edge.events import Envelope, to_json, topic_for
from tests.aggregator.conftest import NewDb

TZ = "Asia/Shanghai"
END = date(2026, 11, 20)
START = END - timedelta(days=2)  # a 3-day period; the one before is 11-15..11-17
FIRST = START - timedelta(days=28)  # the trend window
CAR = {"id": "car-01", "model_name": "Model S", "browse_zone_m": [[2, 3], [10, 3], [10, 9], [2, 9]]}
STORES = {  # store: (brand, region)
    "st-a": ("aurora", "east"),
    "st-b": ("aurora", "west"),
    "st-c": ("aurora", "east"),
    "st-d": ("aurora", "west"),
    "st-e": ("borealis", "east"),
}
REGISTRY = {
    "brands": [{"id": "aurora", "name": "Aurora"}, {"id": "borealis", "name": "Borealis"}],
    "stores": [
        {"store_id": s, "name": s.upper(), "brand": b, "region": r, "timezone": TZ, "cars": [CAR]}
        for s, (b, r) in STORES.items()
    ],
}


def local(day: date, hh: int, mm: int) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=zone(TZ)).astimezone(UTC)


def plans(day: date, n: int, browsers: int) -> list[VisitPlan]:
    """`n` two-minute visits from 08:00 local, one every 5 minutes; the first `browsers` browse 20 s."""
    return [
        VisitPlan(
            local(day, 8, 0) + timedelta(minutes=5 * i),
            120.0,
            browse_car="car-01" if i < browsers else None,
            browse_s=20.0 if i < browsers else 0.0,
            received=i < browsers,
        )
        for i in range(n)
    ]


def visitors_on(store: str, day: date) -> tuple[int, int]:
    """(visitors, browsers) of a store-day in this world."""
    current = day >= START
    if store == "st-a":
        return (20, 10) if current else (10, 5)
    if store == "st-c":
        return (4, 0) if current else (20, 10)
    if store == "st-d" and day in (START, START + timedelta(days=1)):
        return (0, 0)  # a silent node: nothing recorded
    return (10, 5)


@pytest.fixture(scope="module")
def db(module_db: str) -> str:
    """One world, built once per backend and only read by the tests."""
    ing = Ingestor(open_storage(module_db))
    ing.load_registry(parse_registry(REGISTRY))
    events: list[Envelope] = []
    for k, store in enumerate(STORES):
        stamper = stamper_for(store, seed=k + 1)
        day = FIRST
        while day <= END:
            n, browsers = visitors_on(store, day)
            events += [e for p in plans(day, n, browsers) for e in visit_events(stamper, p)]
            day += timedelta(days=1)
    ing.ingest([Message(topic_for(e), to_json(e), datetime.now(UTC)) for e in events])
    ing.storage.close()
    return module_db


def test_closed_period_against_the_one_before(db: str) -> None:
    with Queries.open(db) as q:
        report = q.league_report(START, END, as_of=local(END + timedelta(days=1), 12, 0))
    entries = {e.store_id: e for e in report.entries}
    assert (report.previous_start, report.previous_end) == (date(2026, 11, 15), date(2026, 11, 17))
    a, b, c, d, e = (entries[s] for s in ("st-a", "st-b", "st-c", "st-d", "st-e"))
    assert not any(x.partial for x in entries.values())
    assert a.counts.visitors == 60 and a.previous is not None and a.previous.visitors == 30
    assert a.change.visitors == pytest.approx(1.0) and b.change.visitors == pytest.approx(0.0)
    assert a.change.browse_rate_pp == pytest.approx(0.0)  # 50% then and now
    assert c.change.visitors == pytest.approx(12 / 60 - 1) and c.change.browse_rate_pp == pytest.approx(-50.0)
    # Ranked within the brand, with the brand's size: Borealis's lone store is first of one.
    assert {x.brand_size for x in (a, b, c, d)} == {4} and e.brand_size == 1 and e.brand_rank == 1
    assert sorted(x.brand_rank or 0 for x in (a, b, c, d)) == [1, 2, 3, 4]
    assert [x.store_id for x in report.entries][-1] == "st-e"  # brand by brand
    # Outliers: C fell from 20 a day to 4 and its health is far below the brand's median.
    assert c.outliers == ("below_own_trend", "below_brand")
    assert c.trend_visitors_per_day == pytest.approx(20.0) and c.visitors_per_open_day == pytest.approx(4.0)
    assert a.outliers == () and b.outliers == () and e.outliers == ()
    # Missing days: D recorded nobody on two days of the period.
    assert d.missing_days == 2 and d.outliers == () and a.missing_days == 0
    # Totals per brand and region.
    brands = {t.key: t for t in report.brands}
    regions = {t.key: t for t in report.regions}
    assert brands["aurora"].stores == 4 and brands["aurora"].counts.visitors == 60 + 30 + 12 + 10
    assert brands["aurora"].previous is not None and brands["aurora"].previous.visitors == 30 + 30 + 60 + 30
    assert brands["aurora"].outlier_stores == 1 and brands["aurora"].stores_missing_days == 1
    assert regions["east"].counts.visitors == 60 + 12 + 30 and regions["west"].counts.visitors == 30 + 10


def test_partial_period_cut_at_the_same_local_time(db: str) -> None:
    with Queries.open(db) as q:
        report = q.league_report(START, END, as_of=local(END, 9, 10))
    entries = {e.store_id: e for e in report.entries}
    a, b = entries["st-a"], entries["st-b"]
    assert a.partial and a.compared_until == "09:10" and a.previous_health is None
    # A: two whole days of 20, then 14 visits started before 09:10 (one every 5 min from 08:00)...
    assert a.counts.visitors == 20 + 20 + 14
    # ...against two whole days of 10 and all 10 of 11-17's visits (over by 08:47).
    assert a.previous is not None and a.previous.visitors == 10 + 10 + 10
    assert a.change.visitors == pytest.approx(54 / 30 - 1)
    assert b.counts.visitors == 30 and b.change.visitors == pytest.approx(0.0)
    assert all(t.partial_stores == t.stores for t in report.brands)
    with Queries.open(db) as q:
        series = q.daily_series("st-a", START, END, as_of=local(END, 9, 10))
    assert [d.partial for d in series] == [False, False, True]
    assert series[-1].figures.visitors == 14 and series[0].figures.visitors == 20


# -- many stores in several zones, their last day in progress or not yet begun -------------------------

ZONES = ("Asia/Shanghai", "Europe/Berlin", "America/New_York")
AS_OF = datetime(
    2026, 11, 20, 4, 0, tzinfo=UTC
)  # Shanghai 12:00, Berlin 05:00, New York 23:00 the day before
WIDE = [f"w{k:02d}" for k in range(12)]
SILENT_TODAY, SILENT_BEFORE = "w00", "w03"  # no event on END / on the previous period's last day


def wide_zone(store: str) -> str:
    return ZONES[int(store[1:]) % 3]


def wide_plans(store: str, day: date) -> list[VisitPlan]:
    """From 08:00 local, one visit every 20 minutes (store k: 5 + k visits, later days one more each)."""
    if (store, day) in ((SILENT_TODAY, END), (SILENT_BEFORE, START - timedelta(days=1))):
        return []
    tz = zone(wide_zone(store))
    first = datetime.combine(day, time(8, 0), tzinfo=tz).astimezone(UTC)
    n = 5 + int(store[1:]) + (day - START).days
    return [
        VisitPlan(
            first + timedelta(minutes=20 * i), 300.0, "car-01" if i % 2 else None, 20.0, received=i % 3 == 0
        )
        for i in range(n)
    ]


@pytest.fixture
def wide_db(new_db: NewDb) -> str:
    url = new_db()
    registry = {
        "brands": [{"id": "aurora", "name": "Aurora"}, {"id": "borealis", "name": "Borealis"}],
        "stores": [
            {
                "store_id": s,
                "name": s,
                "brand": ("aurora", "borealis")[k % 2],
                "region": "north" if k < 6 else "south",
                "timezone": wide_zone(s),
                "cars": [CAR],
            }
            for k, s in enumerate(WIDE)
        ],
    }
    ing = Ingestor(open_storage(url))
    ing.load_registry(parse_registry(registry))
    events: list[Envelope] = []
    for k, store in enumerate(WIDE):
        stamper = stamper_for(store, seed=100 + k)
        day = START - timedelta(days=3)
        while day <= END:
            events += [e for p in wide_plans(store, day) for e in visit_events(stamper, p)]
            day += timedelta(days=1)
    ing.ingest([Message(topic_for(e), to_json(e), datetime.now(UTC)) for e in events])
    ing.storage.close()
    return url


def _counts_of(f: FunnelFigures | PeriodFigures | None) -> Counts:
    if f is None:
        return Counts(0, 0, 0, 0, 0)
    days = f.open_days if isinstance(f, PeriodFigures) else int(f.visitors > 0)
    return Counts(f.visitors, f.car_browsers, f.car_entrants, f.receptions, days)


def test_many_stores_cut_as_each_store_alone(wide_db: str) -> None:
    """The league of stores in three zones (Shanghai and Berlin mid-day, New York's last day not begun)
    gives each store the figures its own period, day-so-far and same-time reads give, read one by one."""
    p_start, p_end = START - timedelta(days=3), START - timedelta(days=1)
    with Queries.open(wide_db) as q:
        report = q.league_report(START, END, as_of=AS_OF)
        entries = {e.store_id: e for e in report.entries}
        assert sorted(entries) == WIDE
        for store in WIDE:
            e, tz = entries[store], zone(wide_zone(store))
            if wide_zone(store) == "America/New_York":
                assert not e.partial and e.compared_until is None
                assert e.counts == _counts_of(q.period(store, START, END))
                assert e.previous == _counts_of(q.period(store, p_start, p_end))
                continue
            wall = AS_OF.astimezone(tz).time().replace(tzinfo=None)
            closed = _counts_of(q.period(store, START, END - timedelta(days=1)))
            today = q.day_so_far(store, END, AS_OF)
            then_day = q.day_until(store, p_end, cutoff_on(p_end, wall, tz))
            assert e.partial and e.compared_until == wall.strftime("%H:%M")
            assert e.counts == closed + _counts_of(today)
            if today is None or then_day is None:
                assert e.previous is None and store in (SILENT_TODAY, SILENT_BEFORE)
            else:
                before = _counts_of(q.period(store, p_start, p_end - timedelta(days=1)))
                assert e.previous == before + _counts_of(then_day)
            assert e.missing_days == 2 - closed.open_days
        # A brand's or a region's league: the same stores' figures as in everyone's.
        borealis = q.league_report(START, END, as_of=AS_OF, brand="borealis")
        assert borealis.entries == tuple(e for e in report.entries if e.brand == "borealis")
        south = q.league_report(START, END, as_of=AS_OF, region="south")
        assert sorted((e.store_id, e.counts, e.previous, e.health) for e in south.entries) == sorted(
            (e.store_id, e.counts, e.previous, e.health) for e in report.entries if e.region == "south"
        )
        assert len(south.entries) == 6
    # Counted from the plans: w01 (Berlin) has had nobody yet at 05:00; w02 (New York) is whole days;
    # w06 (Shanghai, 13 visits today from 08:00, one every 20 min) had 12 by 12:00, and 10 of 10 then.
    w01, w02, w06 = entries["w01"], entries["w02"], entries["w06"]
    assert w01.counts.visitors == 6 + 7 and w01.previous is not None and w01.previous.visitors == 3 + 4
    assert (
        w02.counts.visitors == 7 + 8 + 9 and w02.previous is not None and w02.previous.visitors == 4 + 5 + 6
    )
    assert w06.counts.visitors == 11 + 12 + 12 and w06.previous is not None
    assert w06.previous.visitors == 8 + 9 + 10
    assert entries[SILENT_TODAY].previous is None and entries[SILENT_BEFORE].previous is None


def test_the_cyclic_collector_is_paused_while_a_league_reads_and_resumes_after(db: str) -> None:
    """A league of thousands of stores runs without cyclic garbage collection (`aggregator.collector`):
    paused during its reads, running again after it, after a failed one too, and left off where the
    process had turned it off."""
    q = Queries.open(db, cache_periods=False)
    seen: list[bool] = []
    read = q.storage.period_sums

    def period_sums(store_ids: Sequence[str] | None, start: str, end: str) -> list[PeriodSumRow]:
        seen.append(gc.isenabled())
        return read(store_ids, start, end)

    q.storage.period_sums = period_sums  # type: ignore[method-assign]
    assert gc.isenabled()
    q.league_report(START, END, local(END + timedelta(days=1), 9, 0))
    q.league(START, END)
    assert seen and not any(seen)
    assert gc.isenabled()
    q.close()
    with pytest.raises(Exception, match="closed"):
        q.league_report(START, END)
    assert gc.isenabled()
    gc.disable()
    try:
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_nested_and_concurrent_pauses_resume_the_collector_once_the_last_ends() -> None:
    entered, release = threading.Barrier(3), threading.Event()

    def pause() -> None:
        with collection_paused():
            entered.wait()
            release.wait(5)

    threads = [threading.Thread(target=pause) for _ in range(2)]
    for t in threads:
        t.start()
    entered.wait()
    with collection_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the two threads still hold it
    release.set()
    for t in threads:
        t.join()
    assert gc.isenabled()
