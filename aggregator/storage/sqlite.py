"""SQLite storage (through sqlite-utils): every SQL statement of the aggregator lives here.

WAL mode, so the dashboard and the HTTP API read while the ingester writes. Callers (ingest, queries)
use the methods of `SqliteStorage` only, so another backend implements the same methods.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import sqlite_utils

from aggregator.heatgrid import add_cells
from aggregator.storage.base import Row
from aggregator.storage.errors import SchemaTooNewError
from aggregator.storage.migrations import MIGRATIONS
from aggregator.storage.records import (
    ApiTokenRecord,
    AuditRecord,
    AuditRow,
    BrandRow,
    CarDayRecord,
    CarDayRow,
    CarEntryCountRow,
    CarEntryRecord,
    DailyRow,
    DayFacts,
    DwellRecord,
    DwellTotalRow,
    EventPayloadRow,
    EventRecord,
    EventSpan,
    HeatDayRecord,
    HeatGridRow,
    HourlyRecord,
    HourlyRow,
    LastEventRow,
    NodeRow,
    NodeSeenRecord,
    OccupancyRow,
    PeriodSumRow,
    QuarantineRecord,
    QuarantineRow,
    StoredEventRow,
    StoreRow,
    TokenScope,
    VisitEndRecord,
    VisitHistRow,
    VisitKey,
    VisitStartRecord,
    as_records,
)
from aggregator.storage.weekparts import (
    FROM_DAY,
    PARTS,
    TO_DAY,
    PeriodParts,
    period_parts,
    week_days,
    week_part_rows,
)

log = logging.getLogger(__name__)

_DAILY = (
    "SELECT store_id, day, visitors, car_browsers, car_entrants, receptions, visits_ended, visit_s_total, "
    "median_visit_s, visit_hist, car_zone_s, active_hours FROM daily_store "
)
"""daily_store rows in the column order of `write_daily` (a WHERE clause follows)."""

# A period's sums and duration histograms, from week parts of some days and from daily rows of others, in
# the same columns ({stores}: the store filter; {days}: the days' placeholders).
_PART_SUMS = (
    "SELECT store_id, visitors, car_browsers, car_entrants, receptions, open_days, car_zone_s, "
    "active_hours, days_with_ended, max_median_visit_s FROM week_part_store "
    "WHERE day IN ({days}) AND part = ? AND {stores}"
)
_DAY_SUMS = (
    "SELECT store_id, visitors, car_browsers, car_entrants, receptions, visitors > 0 AS open_days, "
    "car_zone_s, active_hours, visits_ended > 0 AS days_with_ended, "
    "CASE WHEN visits_ended > 0 THEN median_visit_s END AS max_median_visit_s FROM daily_store "
    "WHERE {stores} AND day BETWEEN ? AND ?"
)
_PART_HISTS = (
    "SELECT store_id, visit_hist FROM week_part_store "
    "WHERE day IN ({days}) AND part = ? AND {stores} AND days_with_ended > 0"
)
_DAY_HISTS = (
    "SELECT store_id, visit_hist FROM daily_store WHERE {stores} AND day BETWEEN ? AND ? AND visits_ended > 0"
)


class SqliteStorage:
    """One SQLite database file. `readonly=True` opens it for queries only (no migrations, no writes)."""

    FILL_STORES_PER_STEP = 50
    """Stores whose week parts a migration writes at once: many, to write in key order; not all: memory."""
    WEEK_PARTS_STORES_PER_STEP = 10
    """Stores whose week parts are computed at once (a year of one store's takes about 6 MB)."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            if not self.path.exists():
                raise FileNotFoundError(f"database {self.path} does not exist")
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db = sqlite_utils.Database(conn)
        self.conn = conn
        self.readonly = readonly
        conn.execute("PRAGMA busy_timeout = 10000")
        if not readonly:
            self.db.enable_wal()
            conn.execute("PRAGMA synchronous = NORMAL")
            # 64 MiB of page cache (SQLite's default is 2 MiB): an ingest batch of thousands of events
            # touches more index pages than that, and spilling them mid-transaction costs CPU per event.
            conn.execute("PRAGMA cache_size = -65536")
            self.migrate()
        # A reader of a database that its writer has not migrated yet sums periods from daily rows alone.
        version = self.schema_version()
        if version > MIGRATIONS[-1].version:
            conn.close()
            raise SchemaTooNewError(str(self.path), version, MIGRATIONS[-1].version)
        self.has_week_parts = version >= 4
        self.has_floor_plans = version >= 7

    def close(self) -> None:
        self.conn.close()

    # -- schema --------------------------------------------------------------------------------------

    def data_version(self) -> int:
        """Changes whenever another connection commits (SQLite's `PRAGMA data_version`)."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def schema_version(self) -> int:
        if "schema_migrations" not in self.db.table_names():
            return 0
        row = self.conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def migrate(self) -> int:
        """Apply pending migrations; returns the schema version now in place."""
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        current = self.schema_version()
        if current > MIGRATIONS[-1].version:
            raise SchemaTooNewError(str(self.path), current, MIGRATIONS[-1].version)
        for m in MIGRATIONS:
            if m.version <= current:
                continue
            with self.transaction():
                for stmt in m.statements:
                    self.conn.execute(stmt)
                for table in m.fills:
                    self._fill(table)
                self.conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (m.version, m.description, datetime.now(UTC).isoformat()),
                )
            log.info("applied migration %d: %s", m.version, m.description)
            current = m.version
        return current

    def _fill(self, table: str) -> None:
        """Compute a new derived table's rows from the rows already stored (see `Migration.fills`)."""
        if table != "week_part_store":
            raise ValueError(f"no fill for table {table!r}")
        spans = self.conn.execute(
            "SELECT store_id, min(day), max(day) FROM daily_store GROUP BY store_id"
        ).fetchall()
        step = self.FILL_STORES_PER_STEP
        for i in range(0, len(spans), step):
            self._refresh_week_parts({str(r[0]): (str(r[1]), str(r[2])) for r in spans[i : i + step]})

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- raw events and quarantine --------------------------------------------------------------------

    def lock_stores(self, store_ids: Iterable[str]) -> None:
        """Nothing to do: a write transaction (BEGIN IMMEDIATE) already excludes every other writer."""

    def known_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        """Which of these event ids are already stored."""
        found: set[str] = set()
        for i in range(0, len(event_ids), 900):
            chunk = event_ids[i : i + 900]
            marks = ",".join("?" * len(chunk))
            found.update(
                r[0]
                for r in self.conn.execute(f"SELECT event_id FROM events WHERE event_id IN ({marks})", chunk)
            )
        return found

    def insert_events(self, rows: Sequence[EventRecord]) -> None:
        """Events known to be new (checked under the stores' locks)."""
        self.conn.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def insert_quarantine(self, rows: Sequence[QuarantineRecord]) -> None:
        self.conn.executemany(
            "INSERT INTO quarantine (received_at, source, topic, reason_code, reason, payload_size, "
            "payload_head) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def add_counters(self, counts: dict[str, int]) -> None:
        self.conn.executemany(
            "INSERT INTO counters VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            [(k, v) for k, v in counts.items() if v],
        )

    def counters(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.conn.execute("SELECT name, value FROM counters")}

    @as_records(QuarantineRow)
    def quarantine_rows(self, limit: int = 100) -> list[Row]:
        return self.conn.execute(
            "SELECT id, received_at, source, topic, reason_code, reason, payload_size, payload_head "
            "FROM quarantine ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()

    def raw_events(self, store_id: str | None = None) -> Iterator[StoredEventRow]:
        """(topic-less) stored payloads in time order, streamed."""
        if store_id is None:
            rows = self.conn.execute("SELECT event_id, type, payload, received_at FROM events ORDER BY ts")
        else:
            rows = self.conn.execute(
                "SELECT event_id, type, payload, received_at FROM events WHERE store_id = ? ORDER BY ts",
                (store_id,),
            )
        yield from map(StoredEventRow._make, rows)

    def count_events(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM events").fetchone()[0])

    @as_records(EventPayloadRow)
    def _events_between(self, store_id: str, types: Sequence[str], start: str, end: str) -> list[Row]:
        """The store's events of `types` with `ts` in [start, end), in time order."""
        marks = ",".join("?" * len(types))
        return self.conn.execute(
            "SELECT type, payload FROM events WHERE store_id = ? AND ts >= ? AND ts < ? "
            f"AND type IN ({marks}) ORDER BY ts",
            (store_id, start, end, *types),
        ).fetchall()

    def _has_events_between(self, store_id: str, start: str, end: str) -> bool:
        """Whether any event of the store with `ts` in [start, end) is stored (rollups may exist without)."""
        row = self.conn.execute(
            "SELECT 1 FROM events WHERE store_id = ? AND ts >= ? AND ts < ? LIMIT 1", (store_id, start, end)
        ).fetchone()
        return row is not None

    def has_events_in_spans(self, spans: Sequence[EventSpan]) -> list[bool]:
        """For each span, whether any event of its store with `ts` in it is stored. One indexed lookup a
        span: in-process SQLite has no round trip to save."""
        return [self._has_events_between(s.store_id, s.start, s.end) for s in spans]

    def events_in_spans(
        self, spans: Sequence[EventSpan], types: Sequence[str]
    ) -> list[list[EventPayloadRow]]:
        """For each span, its store's events of `types` in it, in time order."""
        return [self._events_between(s.store_id, types, s.start, s.end) for s in spans]

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read inside sees the database as it was at the first one (one read transaction: in WAL mode
        a writer's later commits stay invisible until it ends). Nested uses join the outer one."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    # -- visits and per-visitor facts ------------------------------------------------------------------

    def upsert_visit_starts(self, rows: Sequence[VisitStartRecord]) -> None:
        """Visit starts: a start is authoritative for its visit's day and hour."""
        self.conn.executemany(
            "INSERT INTO visits "
            "(store_id, visitor_id, node_id, has_start, started_at, door_in, day, hour_key) "
            "VALUES (?, ?, ?, 1, ?, ?, ?, ?) "
            "ON CONFLICT (store_id, visitor_id) DO UPDATE SET has_start = 1, "
            "started_at = excluded.started_at, door_in = excluded.door_in, day = excluded.day, "
            "hour_key = excluded.hour_key",
            rows,
        )

    def upsert_visit_ends(self, rows: Sequence[VisitEndRecord]) -> None:
        """Visit ends. The visit's start event, when stored, stays authoritative for its day and hour, so
        the order of start and end does not matter; flags are OR-ed."""
        self.conn.executemany(
            "INSERT INTO visits (store_id, visitor_id, node_id, has_end, started_at, ended_at, duration_s, "
            "door_out, end_reason, browsed, entered_car, received, day, hour_key) "
            "VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (store_id, visitor_id) DO UPDATE SET "
            "has_end = 1, ended_at = excluded.ended_at, duration_s = excluded.duration_s, "
            "door_out = excluded.door_out, end_reason = excluded.end_reason, "
            "browsed = max(browsed, excluded.browsed), entered_car = max(entered_car, excluded.entered_car), "
            "received = max(received, excluded.received), "
            "started_at = CASE WHEN has_start THEN started_at ELSE excluded.started_at END, "
            "day = CASE WHEN has_start THEN day ELSE excluded.day END, "
            "hour_key = CASE WHEN has_start THEN hour_key ELSE excluded.hour_key END",
            rows,
        )

    def flag_visits(self, flag: str, rows: Sequence[VisitKey]) -> None:
        """Set `flag` (browsed, entered_car or received) on these visits."""
        if flag not in ("browsed", "entered_car", "received"):
            raise ValueError(f"unknown visit flag {flag!r}")
        self.conn.executemany(
            f"INSERT INTO visits (store_id, visitor_id, node_id, {flag}) VALUES (?, ?, ?, 1) "
            f"ON CONFLICT (store_id, visitor_id) DO UPDATE SET {flag} = 1 WHERE {flag} = 0",
            rows,
        )

    def insert_dwells(self, rows: Sequence[DwellRecord]) -> None:
        self.conn.executemany("INSERT OR IGNORE INTO dwells VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def dwell_totals(self, keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], float]:
        """Each (store_id, visitor_id, zone_id)'s total dwell in that car's zone so far, seconds (0.0 where
        there is none)."""
        out: dict[tuple[str, str, str], float] = {}
        for key in set(keys):
            total = self.conn.execute(
                "SELECT sum(dwell_s) FROM dwells WHERE store_id = ? AND visitor_id = ? AND zone_id = ?", key
            ).fetchone()[0]
            out[key] = float(total or 0.0)
        return out

    def insert_car_entries(self, rows: Sequence[CarEntryRecord]) -> None:
        self.conn.executemany("INSERT OR IGNORE INTO car_entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    # -- rollup refresh -------------------------------------------------------------------------------

    def take_dirty(self) -> list[tuple[str, str]]:
        """Every store-day waiting for a refresh, removed from the list (call inside the refreshing
        transaction)."""
        rows = self.conn.execute("SELECT store_id, day FROM dirty_days ORDER BY store_id, day").fetchall()
        self.conn.execute("DELETE FROM dirty_days")
        return [(str(a), str(b)) for a, b in rows]

    def day_facts(self, store_id: str, day: str) -> DayFacts:
        return DayFacts(
            *self._day_visit_counts(store_id, day),
            self._day_visit_durations(store_id, day),
            self._day_visitors_by_hour(store_id, day),
            self._day_dwell_totals(store_id, day),
            self._day_car_entries(store_id, day),
        )

    def _day_visit_counts(self, store_id: str, day: str) -> tuple[int, int, int, int]:
        """(visitors, browsers, entrants, receptions) of the day's counted visits."""
        row = self.conn.execute(
            "SELECT count(*), coalesce(sum(browsed), 0), coalesce(sum(entered_car), 0), "
            "coalesce(sum(received), 0) "
            "FROM visits WHERE store_id = ? AND day = ? AND (has_start = 1 OR has_end = 1)",
            (store_id, day),
        ).fetchone()
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    def _day_visit_durations(self, store_id: str, day: str) -> list[float]:
        """Durations of the day's ended visits, but those a node closed at a restart (`DayFacts`)."""
        rows = self.conn.execute(
            "SELECT duration_s FROM visits WHERE store_id = ? AND day = ? AND has_end = 1 "
            "AND duration_s IS NOT NULL AND end_reason IS NOT 'restart'",
            (store_id, day),
        )
        return [float(r[0]) for r in rows]

    def _day_visitors_by_hour(self, store_id: str, day: str) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT hour_key, count(*) FROM visits WHERE store_id = ? AND day = ? "
            "AND (has_start = 1 OR has_end = 1) AND hour_key IS NOT NULL GROUP BY hour_key",
            (store_id, day),
        )
        return {str(k): int(n) for k, n in rows}

    @as_records(DwellTotalRow)
    def _day_dwell_totals(self, store_id: str, day: str) -> list[Row]:
        """Each visitor's stays in each car's zone on the day, summed."""
        return self.conn.execute(
            "SELECT zone_id, visitor_id, sum(dwell_s) FROM dwells WHERE store_id = ? AND day = ? "
            "GROUP BY zone_id, visitor_id",
            (store_id, day),
        ).fetchall()

    @as_records(CarEntryCountRow)
    def _day_car_entries(self, store_id: str, day: str) -> list[Row]:
        return self.conn.execute(
            "SELECT car_id, count(*) FROM car_entries WHERE store_id = ? AND day = ? GROUP BY car_id",
            (store_id, day),
        ).fetchall()

    def write_daily(self, rows: Sequence[DailyRow]) -> None:
        """Daily rollups. The week parts of each store's weeks from that of its first row written to that
        of its last follow."""
        self.conn.executemany("INSERT OR REPLACE INTO daily_store VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        spans: dict[str, tuple[str, str]] = {}
        for r in rows:
            store_id, day = str(r[0]), str(r[1])
            first, last = spans.get(store_id, (day, day))
            spans[store_id] = (min(first, day), max(last, day))
        self._refresh_week_parts(spans)

    def _refresh_week_parts(self, spans: dict[str, tuple[str, str]]) -> None:
        """Recompute the week parts of each store's weeks from its first day's to its last day's (`spans`:
        store_id -> (first day, last day)) from their daily rows."""
        keys: list[tuple[str, str, str]] = []
        rows: list[Row] = []
        stores = list(spans.items())
        for i in range(0, len(stores), self.WEEK_PARTS_STORES_PER_STEP):
            daily: list[Row] = []
            for store_id, (first, last) in stores[i : i + self.WEEK_PARTS_STORES_PER_STEP]:
                days = week_days(date.fromisoformat(first), date.fromisoformat(last))
                daily.extend(
                    self.conn.execute(
                        _DAILY + "WHERE store_id = ? AND day BETWEEN ? AND ?", (store_id, days[0], days[-1])
                    )
                )
                keys.extend((day, part, store_id) for day in days for part in PARTS)
            rows.extend(week_part_rows(daily))
        # In key order: the day leads the key, so one store's parts lie far apart, many stores' together.
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        self.conn.executemany(
            "INSERT OR REPLACE INTO week_part_store VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
        )
        self._delete_week_parts(sorted(set(keys).difference((r[0], r[1], r[2]) for r in rows)))

    def _delete_week_parts(self, keys: Sequence[tuple[str, str, str]]) -> None:
        # By whole keys (day, part, store_id): a store's parts of a range of days are not contiguous.
        self.conn.executemany("DELETE FROM week_part_store WHERE day = ? AND part = ? AND store_id = ?", keys)

    def _write_hourly_visitors(self, store_id: str, day: str, visitors_by_hour: dict[str, int]) -> None:
        self.conn.execute(
            "UPDATE hourly_store SET visitors = 0 WHERE store_id = ? AND day = ?", (store_id, day)
        )
        self.conn.executemany(
            "INSERT INTO hourly_store (store_id, hour_key, day, visitors) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (store_id, hour_key) DO UPDATE SET visitors = excluded.visitors",
            [(store_id, h, day, n) for h, n in visitors_by_hour.items()],
        )

    def _write_car_daily(self, store_id: str, day: str, rows: Sequence[CarDayRow]) -> None:
        """Replace a store-day's per-car rollups."""
        self.conn.execute("DELETE FROM car_daily WHERE store_id = ? AND day = ?", (store_id, day))
        self.conn.executemany(
            "INSERT INTO car_daily VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [(store_id, day, *r) for r in rows]
        )

    def write_hourly_visitors(self, days: Sequence[tuple[str, str, dict[str, int]]]) -> None:
        for store_id, day, by_hour in days:
            self._write_hourly_visitors(store_id, day, by_hour)

    def write_car_daily(self, days: Sequence[tuple[str, str, Sequence[CarDayRow]]]) -> None:
        for store_id, day, rows in days:
            self._write_car_daily(store_id, day, rows)

    # -- heat and occupancy ---------------------------------------------------------------------------

    def add_heats(
        self, table: str, grids: Sequence[tuple[Row, str, float, dict[tuple[int, int], float]]]
    ) -> None:
        """Add person-seconds to day grids (`table` heat_day, each key: store_id, day) or hour grids
        (heat_hour, key: store_id, hour_key): each (key, day, cell_m, cells)."""
        if table == "heat_day":
            where = "store_id = ? AND day = ? AND cell_m = ?"
        elif table == "heat_hour":
            where = "store_id = ? AND hour_key = ? AND cell_m = ?"
        else:
            raise ValueError(f"unknown heat table {table!r}")
        for key, day, cell_m, cells in grids:
            row = self.conn.execute(
                f"SELECT nx, ny, grid FROM {table} WHERE {where}", (*key, cell_m)
            ).fetchone()
            nx, ny, total, blob = add_cells(None if row is None else (row[0], row[1], row[2]), cells)
            if table == "heat_day":
                self.conn.execute(
                    "INSERT OR REPLACE INTO heat_day VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (key[0], key[1], cell_m, nx, ny, total, blob),
                )
            else:
                self.conn.execute(
                    "INSERT OR REPLACE INTO heat_hour VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (key[0], key[1], day, cell_m, nx, ny, total, blob),
                )

    def set_occupancy_minute(self, store_id: str, minute: str, node_id: str, occupancy: int) -> None:
        self.conn.execute(
            "INSERT INTO occupancy_minute VALUES (?, ?, ?, ?) ON CONFLICT (store_id, minute, node_id) "
            "DO UPDATE SET occupancy_max = max(occupancy_max, excluded.occupancy_max)",
            (store_id, minute, node_id, occupancy),
        )

    def refresh_hour_occupancy(self, store_id: str, hour_key: str, hour_end: str, day: str) -> None:
        """Occupancy of an hour: the most visitors on the floor in any minute, summed over the nodes."""
        row = self.conn.execute(
            "SELECT max(s) FROM (SELECT sum(occupancy_max) AS s FROM occupancy_minute "
            "WHERE store_id = ? AND minute >= ? AND minute < ? GROUP BY minute)",
            (store_id, hour_key, hour_end),
        ).fetchone()
        self.conn.execute(
            "INSERT INTO hourly_store (store_id, hour_key, day, occupancy_max) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (store_id, hour_key) DO UPDATE SET occupancy_max = excluded.occupancy_max",
            (store_id, hour_key, day, row[0]),
        )

    # -- nodes ----------------------------------------------------------------------------------------

    def _touch_node(self, store_id: str, node_id: str, last_seen_at: str | None, last_event_ts: str) -> None:
        """`last_seen_at`: latest live receipt (None: not a live one); `last_event_ts`: latest event time."""
        self.conn.execute(
            "INSERT INTO nodes (store_id, node_id, last_seen_at, last_event_ts) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (store_id, node_id) DO UPDATE SET "
            "last_seen_at = nullif(max(coalesce(last_seen_at, ''), "
            "coalesce(excluded.last_seen_at, '')), ''), "
            "last_event_ts = max(coalesce(last_event_ts, ''), excluded.last_event_ts)",
            (store_id, node_id, last_seen_at, last_event_ts),
        )

    def touch_nodes(self, rows: Sequence[tuple[str, str, str | None, str]]) -> None:
        for row in rows:
            self._touch_node(*row)

    def set_node_heartbeat(self, store_id: str, node_id: str, ts: str, heartbeat_json: str) -> None:
        self.conn.execute(
            "UPDATE nodes SET last_heartbeat_at = ?, heartbeat = ? WHERE store_id = ? AND node_id = ? "
            "AND coalesce(last_heartbeat_at, '') <= ?",
            (ts, heartbeat_json, store_id, node_id, ts),
        )

    def set_node_status(self, store_id: str, node_id: str, ts: str, status: str) -> None:
        self.conn.execute(
            "UPDATE nodes SET status = ?, status_at = ? WHERE store_id = ? AND node_id = ? "
            "AND coalesce(status_at, '') <= ?",
            (status, ts, store_id, node_id, ts),
        )

    def seq_ranges(self, store_id: str, node_id: str) -> list[tuple[int, int]]:
        rows = self.conn.execute(
            "SELECT lo, hi FROM node_seq_ranges WHERE store_id = ? AND node_id = ? ORDER BY lo",
            (store_id, node_id),
        )
        return [(int(a), int(b)) for a, b in rows]

    def highest_seqs(self, nodes: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Each (store_id, node_id)'s highest received seq, for the nodes that have one."""
        out: dict[tuple[str, str], int] = {}
        for store_id, node_id in set(nodes):
            row = self.conn.execute(
                "SELECT max(hi) FROM node_seq_ranges WHERE store_id = ? AND node_id = ?", (store_id, node_id)
            ).fetchone()
            if row[0] is not None:
                out[(store_id, node_id)] = int(row[0])
        return out

    def _write_seq_ranges(self, store_id: str, node_id: str, ranges: Sequence[tuple[int, int]]) -> None:
        self.conn.execute(
            "DELETE FROM node_seq_ranges WHERE store_id = ? AND node_id = ?", (store_id, node_id)
        )
        self.conn.executemany(
            "INSERT INTO node_seq_ranges VALUES (?, ?, ?, ?)",
            [(store_id, node_id, lo, hi) for lo, hi in ranges],
        )
        received = sum(hi - lo + 1 for lo, hi in ranges)
        lo = ranges[0][0] if ranges else None
        hi = ranges[-1][1] if ranges else None
        missing = (hi - lo + 1 - received) if ranges and lo is not None and hi is not None else 0
        self.conn.execute(
            "UPDATE nodes SET seq_min = ?, seq_max = ?, seq_received = ?, seq_missing = ? "
            "WHERE store_id = ? AND node_id = ?",
            (lo, hi, received, missing, store_id, node_id),
        )

    def write_seq_ranges(self, nodes: Sequence[tuple[str, str, Sequence[tuple[int, int]]]]) -> None:
        for store_id, node_id, ranges in nodes:
            self._write_seq_ranges(store_id, node_id, ranges)

    def unrecoverable_ranges(self, store_id: str, node_id: str) -> list[tuple[int, int, str, str]]:
        rows = self.conn.execute(
            "SELECT lo, hi, reason, reported_at FROM node_seq_unrecoverable "
            "WHERE store_id = ? AND node_id = ? ORDER BY lo",
            (store_id, node_id),
        )
        return [(int(a), int(b), str(r), str(t)) for a, b, r, t in rows]

    def add_unrecoverable_ranges(
        self, store_id: str, node_id: str, ranges: Sequence[tuple[int, int, str]], reported_at: str
    ) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO node_seq_unrecoverable VALUES (?, ?, ?, ?, ?, ?)",
            [(store_id, node_id, lo, hi, reason, reported_at) for lo, hi, reason in ranges],
        )

    @as_records(NodeRow)
    def node_rows(self, store_ids: Sequence[str] | None = None) -> list[Row]:
        """(store_id, node_id, status, status_at, last_seen_at, last_event_ts, last_heartbeat_at, heartbeat,
        seq_min, seq_max, seq_received, seq_missing)."""
        sql = (
            "SELECT store_id, node_id, status, status_at, last_seen_at, last_event_ts, last_heartbeat_at, "
            "heartbeat, seq_min, seq_max, seq_received, seq_missing FROM nodes"
        )
        if store_ids is None:
            return self.conn.execute(sql + " ORDER BY store_id, node_id").fetchall()
        marks = ",".join("?" * len(store_ids))
        return self.conn.execute(
            sql + f" WHERE store_id IN ({marks}) ORDER BY store_id, node_id", tuple(store_ids)
        ).fetchall()

    # -- registry -------------------------------------------------------------------------------------

    def write_brand(self, brand_id: str, name: str, weights: dict[str, float]) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO brands VALUES (?, ?, ?)",
            (brand_id, name, json.dumps(weights, sort_keys=True)),
        )
        self.add_counters({"registry.version": 1})

    def write_store(self, row: StoreRow) -> None:
        """The store's registry entry; its drawing is kept (`write_floor_image` replaces it)."""
        self.conn.execute(
            "INSERT INTO stores (store_id, name, brand, region, timezone, floor_w_m, floor_h_m, "
            "browse_min_s, cars, floor_plan) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (store_id) DO UPDATE SET "
            "name = excluded.name, brand = excluded.brand, region = excluded.region, "
            "timezone = excluded.timezone, floor_w_m = excluded.floor_w_m, floor_h_m = excluded.floor_h_m, "
            "browse_min_s = excluded.browse_min_s, cars = excluded.cars, floor_plan = excluded.floor_plan",
            row,
        )
        self.add_counters({"registry.version": 1})

    def write_floor_image(self, store_id: str, png: bytes | None) -> None:
        self.conn.execute("UPDATE stores SET floor_image = ? WHERE store_id = ?", (png, store_id))
        self.add_counters({"registry.version": 1})

    def floor_image(self, store_id: str) -> bytes | None:
        if not self.has_floor_plans:
            return None
        row = self.conn.execute("SELECT floor_image FROM stores WHERE store_id = ?", (store_id,)).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def registry_version(self) -> int:
        """Bumped by every registry write (readers cache the registry on it)."""
        row = self.conn.execute("SELECT value FROM counters WHERE name = 'registry.version'").fetchone()
        return 0 if row is None else int(row[0])

    @as_records(StoreRow)
    def store_rows(self) -> list[Row]:
        return self.conn.execute(
            "SELECT store_id, name, brand, region, timezone, floor_w_m, floor_h_m, browse_min_s, cars, "
            # A reader of a database its writer has not migrated yet: no floor plans.
            + ("floor_plan " if self.has_floor_plans else "'{}' ")
            + "FROM stores ORDER BY store_id"
        ).fetchall()

    @as_records(BrandRow)
    def brand_rows(self) -> list[Row]:
        return self.conn.execute("SELECT brand_id, name, weights FROM brands ORDER BY brand_id").fetchall()

    def store_ids_with_data(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT store_id FROM nodes ORDER BY store_id")]

    def delete_derived(self, store_id: str) -> None:
        """Forget everything derived from a store's raw events (before rebuilding it)."""
        first, last = self.conn.execute(
            "SELECT min(day), max(day) FROM daily_store WHERE store_id = ?", (store_id,)
        ).fetchone()
        if first is not None:  # week parts exist only in weeks with daily rows
            days = week_days(date.fromisoformat(first), date.fromisoformat(last))
            self._delete_week_parts([(day, part, store_id) for day in days for part in PARTS])
        for table in (
            "visits",
            "dwells",
            "car_entries",
            "daily_store",
            "hourly_store",
            "car_daily",
            "heat_day",
            "heat_hour",
            "occupancy_minute",
        ):
            self.conn.execute(f"DELETE FROM {table} WHERE store_id = ?", (store_id,))

    # -- reads for queries ----------------------------------------------------------------------------

    @as_records(DailyRow)
    def daily_rows(self, store_ids: Sequence[str] | None, start: str, end: str) -> list[Row]:
        """(store_id, day, visitors, car_browsers, car_entrants, receptions, visits_ended, visit_s_total,
        median_visit_s, visit_hist, car_zone_s, active_hours) for days in [start, end]."""
        sql = _DAILY
        if store_ids is None:
            # Seek each store's day range through the primary key: far cheaper than the day index and a sort.
            return self.conn.execute(
                sql + "WHERE store_id IN (SELECT store_id FROM stores UNION SELECT store_id FROM nodes) "
                "AND day BETWEEN ? AND ? ORDER BY store_id, day",
                (start, end),
            ).fetchall()
        if len(store_ids) == 1:
            return self.conn.execute(
                sql + "WHERE store_id = ? AND day BETWEEN ? AND ? ORDER BY day", (store_ids[0], start, end)
            ).fetchall()
        marks = ",".join("?" * len(store_ids))
        return self.conn.execute(
            sql + f"WHERE store_id IN ({marks}) AND day BETWEEN ? AND ? ORDER BY store_id, day",
            (*store_ids, start, end),
        ).fetchall()

    def _stores_clause(self, store_ids: Sequence[str] | None) -> tuple[str, tuple[str, ...]]:
        # Seek each store's day range through the primary key (store_id, day).
        if store_ids is None:
            return "store_id IN (SELECT store_id FROM stores UNION SELECT store_id FROM nodes)", ()
        return f"store_id IN ({','.join('?' * len(store_ids))})", tuple(store_ids)

    def _period_union(
        self, store_ids: Sequence[str] | None, start: str, end: str, part_sql: str, day_sql: str
    ) -> tuple[str, tuple[str, ...]]:
        """`part_sql` over the week parts and `day_sql` over the daily rows that hold days [start, end], in
        one UNION ALL."""
        where, params = self._stores_clause(store_ids)
        plan = period_parts(start, end) if self.has_week_parts else PeriodParts(days=(start, end))
        selects: list[str] = []
        args: list[str] = []
        for part, days in ((FROM_DAY, plan.from_days), (TO_DAY, plan.to_days)):
            if days:
                selects.append(part_sql.format(days=",".join("?" * len(days)), stores=where))
                args.extend((*days, part, *params))
        if plan.days is not None:
            selects.append(day_sql.format(stores=where))
            args.extend((*params, *plan.days))
        return " UNION ALL ".join(selects), tuple(args)

    @as_records(PeriodSumRow)
    def period_sums(self, store_ids: Sequence[str] | None, start: str, end: str) -> list[Row]:
        """Per store with daily rows in days [start, end]: (store_id, visitors, browsers, entrants,
        receptions, open_days, car_zone_s, active_hours, days_with_ended_visits, largest median_visit_s of
        such a day)."""
        union, args = self._period_union(store_ids, start, end, _PART_SUMS, _DAY_SUMS)
        return self.conn.execute(
            "SELECT store_id, sum(visitors), sum(car_browsers), sum(car_entrants), sum(receptions), "
            "sum(open_days), sum(car_zone_s), sum(active_hours), sum(days_with_ended), "
            f"max(max_median_visit_s) FROM ({union}) GROUP BY store_id",
            args,
        ).fetchall()

    @as_records(VisitHistRow)
    def period_visit_hists(self, store_ids: Sequence[str] | None, start: str, end: str) -> list[Row]:
        """(store_id, visit duration histogram) rows whose histograms sum, per store, to those of its days in
        [start, end] with ended visits (week parts of several days, or single days)."""
        union, args = self._period_union(store_ids, start, end, _PART_HISTS, _DAY_HISTS)
        return self.conn.execute(union, args).fetchall()

    @as_records(HourlyRow)
    def hourly_rows(self, store_id: str, day: str) -> list[Row]:
        """(hour_key, visitors, occupancy_max) of a local day."""
        return self.conn.execute(
            "SELECT hour_key, visitors, occupancy_max FROM hourly_store WHERE store_id = ? AND day = ?",
            (store_id, day),
        ).fetchall()

    @as_records(CarDayRow)
    def car_daily_rows(self, store_id: str, start: str, end: str) -> list[Row]:
        """(car_id, browsers, dwell_total_s, dwell_median_s, dwell_hist, entries) per day in [start, end]."""
        return self.conn.execute(
            "SELECT car_id, browsers, dwell_total_s, dwell_median_s, dwell_hist, entries FROM car_daily "
            "WHERE store_id = ? AND day BETWEEN ? AND ?",
            (store_id, start, end),
        ).fetchall()

    @as_records(HeatGridRow)
    def heat_day_rows(self, store_id: str, start: str, end: str) -> list[Row]:
        """(cell_m, nx, ny, grid) of each day in [start, end]."""
        return self.conn.execute(
            "SELECT cell_m, nx, ny, grid FROM heat_day WHERE store_id = ? AND day BETWEEN ? AND ?",
            (store_id, start, end),
        ).fetchall()

    @as_records(HeatGridRow)
    def heat_hour_rows(self, store_id: str, start_key: str, end_key: str) -> list[Row]:
        """(cell_m, nx, ny, grid) of each hour bucket starting in [start_key, end_key)."""
        return self.conn.execute(
            "SELECT cell_m, nx, ny, grid FROM heat_hour "
            "WHERE store_id = ? AND hour_key >= ? AND hour_key < ?",
            (store_id, start_key, end_key),
        ).fetchall()

    def open_visits(self, store_id: str, since: str, until: str) -> int:
        """Visits started in [since, until] that have not ended."""
        row = self.conn.execute(
            "SELECT count(*) FROM visits WHERE store_id = ? AND has_start = 1 AND has_end = 0 "
            "AND started_at >= ? AND started_at <= ?",
            (store_id, since, until),
        ).fetchone()
        return int(row[0])

    def latest_occupancy(self, store_id: str) -> OccupancyRow | None:
        """The latest minute with heat, and the occupancy summed over the store's nodes."""
        row: Row | None = self.conn.execute(
            "SELECT minute, sum(occupancy_max) FROM occupancy_minute WHERE store_id = ? "
            "GROUP BY minute ORDER BY minute DESC LIMIT 1",
            (store_id,),
        ).fetchone()
        return None if row is None else OccupancyRow(str(row[0]), int(row[1]))

    @as_records(LastEventRow)
    def last_event_per_store(self) -> list[Row]:
        """(store_id, latest received_at, latest event ts) over the store's nodes."""
        return self.conn.execute(
            "SELECT store_id, max(last_seen_at), max(last_event_ts) FROM nodes GROUP BY store_id"
        ).fetchall()

    # -- accuracy audits -----------------------------------------------------------------------------

    def door_counts(self, store_id: str, start: str, end: str) -> tuple[int, int]:
        """(inward, outward) door crossings in [start, end): visits started, and visits ended by a door."""
        inward = self.conn.execute(
            "SELECT count(*) FROM visits WHERE store_id = ? AND started_at >= ? AND started_at < ?",
            (store_id, start, end),
        ).fetchone()[0]
        outward = self.conn.execute(
            "SELECT count(*) FROM visits WHERE store_id = ? AND has_end = 1 AND door_out IS NOT NULL "
            "AND ended_at >= ? AND ended_at < ?",
            (store_id, start, end),
        ).fetchone()[0]
        return int(inward), int(outward)

    def insert_api_token(self, row: ApiTokenRecord) -> None:
        """Exactly one of brand_id and store_id is set."""
        self.conn.execute("INSERT INTO api_tokens VALUES (?, ?, ?, ?, ?)", row)

    def api_token(self, token_sha256: str) -> TokenScope | None:
        """What the token with this hash may read, or None."""
        row: Row | None = self.conn.execute(
            "SELECT brand_id, store_id FROM api_tokens WHERE token_sha256 = ?", (token_sha256,)
        ).fetchone()
        return None if row is None else TokenScope(*row)

    @as_records(ApiTokenRecord)
    def api_token_rows(self) -> list[Row]:
        return self.conn.execute(
            "SELECT token_sha256, brand_id, store_id, note, created_at FROM api_tokens ORDER BY created_at"
        ).fetchall()

    def insert_audit(self, row: AuditRecord) -> int:
        """Record an audit; returns its id."""
        cur = self.conn.execute(
            "INSERT INTO audits (store_id, start_ts, end_ts, manual_in, system_in, manual_out, system_out, "
            "auditor, note, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        return int(cur.lastrowid or 0)

    @as_records(AuditRow)
    def audit_rows(self, store_id: str | None = None, limit: int = 1000) -> list[Row]:
        """Audits, the latest sample first: (id, store_id, start_ts, end_ts, manual_in, system_in,
        manual_out, system_out, auditor, note, recorded_at)."""
        where, args = ("WHERE store_id = ? ", (store_id,)) if store_id is not None else ("", ())
        return self.conn.execute(
            "SELECT id, store_id, start_ts, end_ts, manual_in, system_in, manual_out, system_out, auditor, "
            f"note, recorded_at FROM audits {where}ORDER BY end_ts DESC, id DESC LIMIT ?",
            (*args, limit),
        ).fetchall()

    def bulk_write_rollups(
        self,
        *,
        daily: Sequence[DailyRow] = (),
        hourly: Sequence[HourlyRecord] = (),
        car_daily: Sequence[CarDayRecord] = (),
        heat_day: Sequence[HeatDayRecord] = (),
        nodes: Sequence[NodeSeenRecord] = (),
    ) -> None:
        """Write rollup rows directly (data generators for load tests; no raw events behind them)."""
        c = self.conn
        self.write_daily(daily)
        c.executemany(
            "INSERT OR REPLACE INTO hourly_store (store_id, hour_key, day, visitors, occupancy_max) "
            "VALUES (?,?,?,?,?)",
            hourly,
        )
        c.executemany("INSERT OR REPLACE INTO car_daily VALUES (?,?,?,?,?,?,?,?)", car_daily)
        c.executemany("INSERT OR REPLACE INTO heat_day VALUES (?,?,?,?,?,?,?)", heat_day)
        c.executemany(
            "INSERT OR REPLACE INTO nodes "
            "(store_id, node_id, status, status_at, last_seen_at, last_event_ts) "
            "VALUES (?, ?, 'online', ?3, ?3, ?3)",
            nodes,
        )
