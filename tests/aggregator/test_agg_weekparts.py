"""Week parts: a period summed from week parts equals the same period summed from its daily rows.

The reference is the previous release's path: a database at schema version 3 (no week parts), opened
read-only, sums periods from daily rows alone. The same rows in a migrated database (filled by the
migration, or kept up by the writes) must give the same figures for any period and any stores.
"""

from __future__ import annotations

import math
import random
import shutil
import sqlite3
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aggregator import histogram
from aggregator.ingest import Ingestor, Message
from aggregator.queries import Queries
from aggregator.registry import parse_registry
from aggregator.storage import SqliteStorage, StorageBackend, open_storage
from aggregator.storage.base import Row
from aggregator.storage.migrations import MIGRATIONS
from aggregator.storage.postgres import PgStorage
from aggregator.storage.weekparts import period_parts, week_part_rows
from aggregator.synth import VisitPlan, fill_rollups, stamper_for, synthetic_registry_rows, visit_events
from edge.events import to_json, topic_for
from tests.aggregator.conftest import PgDatabases

FIRST_DAY = date(2026, 1, 1)  # a Thursday
N_DAYS = 90
REGISTRY = synthetic_registry_rows(8, brands=2)
NODES_ONLY = "u-nodes-only"
"""Seen by a node, not registered: in every all-stores query."""
ORPHAN = "u-orphan"
"""Daily rows only: in no all-stores query, only when asked for by id."""
STORE_IDS = [str(r[0]) for r in REGISTRY] + [NODES_ONLY, ORPHAN]


def daily_row(rng: random.Random, store_id: str, day: date) -> Row:
    """A daily_store row with random figures; some days have visitors but no ended visit."""
    visitors = rng.choice([0, 1, 2, rng.randrange(3, 80)])
    browsers = rng.randint(0, visitors)
    durations = [rng.uniform(5, 3000) for _ in range(rng.choice([0, visitors, visitors // 2]))]
    return (
        store_id,
        day.isoformat(),
        visitors,
        browsers,
        rng.randint(0, browsers),
        rng.randint(0, visitors),
        len(durations),
        sum(durations),
        sorted(durations)[len(durations) // 2] if durations else None,
        histogram.encode(histogram.histogram(durations)),
        rng.uniform(0, 5000) if browsers else 0.0,
        rng.randint(0, 11),
    )


def random_daily(seed: int) -> list[Row]:
    """Rows for every store but s0001 (registered, no data), each with its own share of days missing."""
    rng = random.Random(seed)
    rows = []
    for i, store_id in enumerate(STORE_IDS):
        share = [1.0, 0.0, 0.9, 0.5, 0.2, 1.0, 0.05, 0.7, 0.8, 0.6][i]
        for k in range(N_DAYS):
            if rng.random() < share:
                rows.append(daily_row(rng, store_id, FIRST_DAY + timedelta(days=k)))
    return rows


def v3_database(path: Path, daily: Sequence[Row]) -> None:
    """A database as the release before week parts left it: migrations 1-3, registry, nodes, daily rows."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE schema_migrations "
        "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    for m in MIGRATIONS[:3]:
        for stmt in m.statements:
            conn.execute(stmt)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (m.version, m.description, "-"))
    # The stores table of the time: no floor plan column.
    conn.executemany("INSERT INTO stores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [r[:9] for r in REGISTRY])
    conn.executemany(
        "INSERT INTO nodes (store_id, node_id) VALUES (?, 'node-a')",
        [(s,) for s in STORE_IDS if s != ORPHAN],
    )
    conn.executemany("INSERT OR REPLACE INTO daily_store VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", daily)
    conn.commit()
    conn.close()


def week_parts_table(storage: StorageBackend) -> list[Row]:
    sql = "SELECT * FROM week_part_store ORDER BY day, part, store_id"
    if isinstance(storage, PgStorage):
        with psycopg.connect(storage.dsn) as conn:
            return [(*r[:-1], None if r[-1] is None else bytes(r[-1])) for r in conn.execute(sql)]
    assert isinstance(storage, SqliteStorage)
    return storage.conn.execute(sql).fetchall()


def week_parts_from_daily(storage: StorageBackend) -> list[Row]:
    """The week parts that the stored daily rows call for."""
    daily = storage.daily_rows([*STORE_IDS, "s-ingest"], "0000-01-01", "9999-12-31")
    return sorted(week_part_rows(daily), key=lambda r: (r[0], r[1], r[2]))


@pytest.fixture(scope="module", params=["filled by the migration", "kept up by the writes"])
def old_and_new(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Queries, Queries]]:
    """Queries on a version-3 database (daily rows only) and on a migrated one holding the same rows."""
    tmp = tmp_path_factory.mktemp("weekparts")
    daily = random_daily(seed=11)
    v3_database(tmp / "old.sqlite", daily)
    if request.param == "filled by the migration":
        shutil.copy(tmp / "old.sqlite", tmp / "new.sqlite")
        storage = SqliteStorage(tmp / "new.sqlite")
    else:
        v3_database(tmp / "new.sqlite", [])
        storage = SqliteStorage(tmp / "new.sqlite")
        rng = random.Random(5)
        # Earlier versions of some rows first, rewritten below as a late refresh would.
        stale = [daily_row(rng, str(r[0]), date.fromisoformat(str(r[1]))) for r in rng.sample(daily, 60)]
        shuffled = rng.sample(daily, len(daily))
        with storage.transaction():
            storage.bulk_write_rollups(daily=stale + shuffled[:300])
        with storage.transaction():
            rest = shuffled[300:]
            while rest:  # one row, or a few of any stores and days
                n = rng.choice([1, 1, 5, 40])
                storage.write_daily(rest[:n])
                rest = rest[n:]
    assert storage.schema_version() == MIGRATIONS[-1].version
    assert week_parts_table(storage) == week_parts_from_daily(storage)
    storage.close()
    old = Queries(SqliteStorage(tmp / "old.sqlite", readonly=True), cache_periods=False)
    new = Queries(SqliteStorage(tmp / "new.sqlite", readonly=True), cache_periods=False)
    assert not old.storage.has_week_parts and new.storage.has_week_parts  # type: ignore[attr-defined]
    yield old, new
    old.close()
    new.close()


def assert_same_periods(old: Queries, new: Queries, stores: list[str] | None, start: date, end: date) -> None:
    a, b = old._read_period(stores, start, end), new._read_period(stores, start, end)
    assert a.keys() == b.keys()
    for store_id, x in a.items():
        y = b[store_id]
        assert (x.visitors, x.browsers, x.entrants, x.receptions) == (
            y.visitors,
            y.browsers,
            y.entrants,
            y.receptions,
        )
        assert (x.open_days, x.active_hours) == (y.open_days, y.active_hours)
        assert (x.days_with_median, x.single_median) == (y.days_with_median, y.single_median)
        # Summed in another grouping: equal up to rounding.
        assert math.isclose(x.car_zone_s, y.car_zone_s, rel_tol=1e-12, abs_tol=1e-9)
        assert x.median() == y.median()  # several days: from their summed histograms


DAYS = st.integers(-10, N_DAYS + 10).map(lambda k: FIRST_DAY + timedelta(days=k))


@settings(max_examples=150, deadline=None)
@given(
    start=DAYS,
    length=st.one_of(st.integers(0, 8), st.integers(0, 70)),
    stores=st.one_of(st.none(), st.lists(st.sampled_from(STORE_IDS), min_size=1, max_size=4, unique=True)),
)
@example(start=date(2026, 1, 5), length=6, stores=None)  # one whole week, Monday to Sunday
@example(start=date(2026, 1, 5), length=2, stores=None)  # from a Monday
@example(start=date(2026, 1, 9), length=2, stores=None)  # to a Sunday
@example(start=date(2026, 1, 6), length=3, stores=None)  # inside a week
@example(start=date(2026, 1, 6), length=29, stores=None)  # the league's 30 days
@example(start=date(2026, 1, 11), length=1, stores=["s0000"])  # Sunday to Monday
@example(start=date(2026, 1, 5), length=0, stores=[ORPHAN, "s0001"])
def test_periods_from_week_parts_equal_periods_from_daily_rows(
    old_and_new: tuple[Queries, Queries], start: date, length: int, stores: list[str] | None
) -> None:
    old, new = old_and_new
    assert_same_periods(old, new, stores, start, start + timedelta(days=length))


@pytest.mark.parametrize("length", [1, 7, 30, 90])
def test_league_and_period_results_are_unchanged(old_and_new: tuple[Queries, Queries], length: int) -> None:
    old, new = old_and_new
    end = FIRST_DAY + timedelta(days=N_DAYS - 1)
    start = end - timedelta(days=length - 1)
    a, b = old.league(start, end), new.league(start, end)
    assert [(r.store.store_id, r.figures) for r in a] == [(r.store.store_id, r.figures) for r in b]
    for x, y in zip(a, b, strict=True):
        assert x.health == y.health or x.health == pytest.approx(y.health, rel=1e-12)
    assert [old.period(s, start, end) for s in STORE_IDS] == [new.period(s, start, end) for s in STORE_IDS]


@given(start=DAYS, length=st.integers(0, 60))
def test_period_parts_hold_each_day_of_the_period_once(start: date, length: int) -> None:
    end = start + timedelta(days=length)
    plan = period_parts(start.isoformat(), end.isoformat())
    covered: list[date] = []
    for key in plan.from_days:  # the day to its week's Sunday
        d = date.fromisoformat(key)
        covered.extend(d + timedelta(days=i) for i in range(7 - d.weekday()))
    for key in plan.to_days:  # the week's Monday to the day
        d = date.fromisoformat(key)
        covered.extend(d - timedelta(days=i) for i in range(d.weekday() + 1))
    if plan.days is not None:
        a, b = (date.fromisoformat(k) for k in plan.days)
        covered.extend(a + timedelta(days=i) for i in range((b - a).days + 1))
        assert (b - a).days <= 4  # daily rows only inside one week
    assert sorted(covered) == [start + timedelta(days=i) for i in range(length + 1)]
    assert len(plan.from_days) + len(plan.to_days) <= 2 + length // 7


def ingest_visits(ing: Ingestor, store_id: str, starts_utc: Sequence[datetime], seed: int) -> None:
    stamper = stamper_for(store_id, seed=seed)
    events = [e for t in starts_utc for e in visit_events(stamper, VisitPlan(t, 300.0 + 60 * t.hour))]
    ing.ingest([Message(topic_for(e), to_json(e), datetime.now(UTC)) for e in events])


def same_history(url: str, daily: Sequence[Row]) -> None:
    """The registry, nodes and daily rows of `old_and_new`'s databases, written into `url`."""
    storage = open_storage(url)
    with storage.transaction():
        for row in REGISTRY:
            storage.write_store(row)
        storage.bulk_write_rollups(
            daily=daily, nodes=[(s, "node-a", "2026-01-01T00:00:00.000Z") for s in STORE_IDS if s != ORPHAN]
        )
    storage.close()


@pytest.mark.parametrize(
    ("first", "last"),
    [
        ("2026-03-31", "2026-03-31"),  # one day
        ("2026-03-24", "2026-03-26"),  # inside a week: daily rows
        ("2026-03-29", "2026-03-31"),  # across a Sunday: week parts
        ("2026-03-02", "2026-03-31"),  # the league's 30 days
        ("2026-01-01", "2026-03-31"),  # the whole history
    ],
)
def test_league_is_the_same_on_sqlite_and_postgresql(
    tmp_path: Path, pg_databases: PgDatabases, first: str, last: str
) -> None:
    """The same rollups give the same league, figure for figure (medians of several days included), on both
    backends: each sums its own week parts, the same code reads medians from the summed histograms."""
    daily = [  # some days' histograms in the first (dense zlib) encoding, as a pilot's oldest rows hold them
        (*r[:9], zlib.compress(histogram.decode(r[9]).astype("<u4").tobytes()), *r[10:]) if i % 7 == 0 else r
        for i, r in enumerate(random_daily(seed=11))
    ]
    pg_url = pg_databases.new()
    try:
        same_history(str(tmp_path / "lite.sqlite"), daily)
        same_history(pg_url, daily)
        start, end = date.fromisoformat(first), date.fromisoformat(last)
        as_of = datetime(2027, 1, 1, tzinfo=UTC)
        with (
            Queries.open(tmp_path / "lite.sqlite", cache_periods=False) as lite,
            Queries.open(pg_url, cache_periods=False) as pg,
        ):
            a, b = lite.league(start, end, as_of=as_of), pg.league(start, end, as_of=as_of)
            several = [r for r in a if r.figures.median_visit_s is not None and r.figures.open_days > 1]
            assert len(a) == len(STORE_IDS) - 1 and (start == end or several)
            assert a == b
            assert lite.league(start, end, brand="b1", as_of=as_of) == pg.league(
                start, end, brand="b1", as_of=as_of
            )
    finally:
        pg_databases.release(pg_url)


def test_a_late_refresh_of_a_day_updates_its_week_parts(db: str) -> None:
    ing = Ingestor(open_storage(db))
    store = {"store_id": "s-ingest", "name": "S", "brand": "b", "region": "r", "timezone": "UTC"}
    ing.load_registry(parse_registry({"stores": [store]}))
    monday = date(2026, 11, 23)

    def at(day: date, hour: int) -> datetime:
        return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)

    wednesday = monday + timedelta(days=2)
    ingest_visits(ing, "s-ingest", [at(monday, 9), at(monday, 10), at(wednesday, 11)], seed=1)
    with Queries.open(db, cache_periods=False) as q:
        assert q.period("s-ingest", monday, monday + timedelta(days=6)).visitors == 3
    # Monday's visits arrive late, after Wednesday's: Monday is refreshed again.
    ingest_visits(ing, "s-ingest", [at(monday, 12), at(monday, 15)], seed=2)
    with Queries.open(db, cache_periods=False) as q:
        week = q.period("s-ingest", monday, monday + timedelta(days=6))  # Sunday's part
        to_tuesday = q.period("s-ingest", monday, monday + timedelta(days=1))  # Tuesday's part
        from_tuesday = q.period("s-ingest", monday + timedelta(days=1), monday + timedelta(days=6))
        monday_alone = q.period("s-ingest", monday, monday)  # its daily row
    assert (week.visitors, to_tuesday.visitors, from_tuesday.visitors) == (5, 4, 1)
    assert (week.open_days, to_tuesday.open_days) == (2, 1)
    assert to_tuesday.median_visit_s == monday_alone.median_visit_s  # one day with visits: its own median
    assert week.median_visit_s is not None and week.median_visit_s != monday_alone.median_visit_s
    assert week_parts_table(ing.storage) == week_parts_from_daily(ing.storage)
    ing.storage.delete_derived("s-ingest")
    assert week_parts_table(ing.storage) == []


def test_fill_rollups_writes_the_week_parts_of_its_daily_rows(db: str) -> None:
    storage = open_storage(db)
    fill_rollups(storage, n_stores=3, start=date(2026, 1, 1), n_days=24)
    parts = week_parts_table(storage)
    assert parts == week_parts_from_daily(storage)
    assert {r[2] for r in parts} == {"s0000", "s0001", "s0002"}
    # Thursday 1 to Saturday 24 January: parts of each day of four weeks, but no `to_day` part before the
    # first daily row (Monday to Wednesday) and no `from_day` part after the last (Sunday).
    assert len(parts) == 3 * (4 * 14 - 3 - 1)
