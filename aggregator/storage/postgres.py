"""PostgreSQL storage (psycopg 3 and a connection pool): the same storage methods as `SqliteStorage`, in
PostgreSQL's SQL, for brand-wide deployments with several aggregator processes.

Several processes write at once, so a write transaction first takes an advisory lock per store it writes
(`lock_stores`, in a fixed order): batches about different stores run in parallel, batches about the same
store one after the other, which keeps the read-modify-write steps (heat grids, visit flags, sequence
ranges) and the event-id check exact. Store-days needing a rollup refresh are marked by the writes
themselves in the same transaction (no triggers); a refresh takes the marks of the stores it can lock.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from aggregator.heatgrid import add_cells
from aggregator.storage.base import Row
from aggregator.storage.errors import SchemaTooNewError, StorageError, StorageUnavailableError
from aggregator.storage.partitions import Partitions, months_around, partition_name
from aggregator.storage.pg_migrations import PARTITIONED, PG_MIGRATIONS
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
from aggregator.storage.url import redact
from aggregator.storage.weekparts import (
    FROM_DAY,
    PARTS,
    TO_DAY,
    period_parts,
    week_days,
    week_part_rows,
)

log = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[Any, ...]]

STORE_LOCK_NAMESPACE = 0x53484F57
"""Advisory locks (namespace, hashtext(store_id)) serialise the writers of one store."""
MIGRATION_LOCK = (STORE_LOCK_NAMESPACE + 1, 0)

_DAILY_COLS = (
    "store_id, day, visitors, car_browsers, car_entrants, receptions, visits_ended, visit_s_total, "
    "median_visit_s, visit_hist, car_zone_s, active_hours"
)
_KNOWN_STORES = "store_id IN (SELECT store_id FROM stores UNION SELECT store_id FROM nodes)"
_SPANS = "unnest(%b::text[], %b::text[], %b::text[]) WITH ORDINALITY AS s(store_id, a, b, i)"
_IN_SPAN = 'e.store_id = s.store_id COLLATE "C" AND e.ts >= s.a COLLATE "C" AND e.ts < s.b COLLATE "C"'
"""`events_in_spans`: the spans as rows (numbered from 1) and an event inside its span (the keys compare
in the events' own collation, so the (store_id, ts) index serves each span). The arrays travel in binary:
thousands of keys dumped as text arrays cost the client more than the read."""
_PART_SUMS = (
    "SELECT store_id, visitors, car_browsers, car_entrants, receptions, open_days, car_zone_s, "
    "active_hours, days_with_ended, max_median_visit_s FROM week_part_store "
    "WHERE day = ANY(%b) AND part = %s AND {stores}"
)
_DAY_SUMS = (
    "SELECT store_id, visitors, car_browsers, car_entrants, receptions, (visitors > 0)::int AS open_days, "
    "car_zone_s, active_hours, (visits_ended > 0)::int AS days_with_ended, "
    "CASE WHEN visits_ended > 0 THEN median_visit_s END AS max_median_visit_s FROM daily_store "
    "WHERE {stores} AND day BETWEEN %s AND %s"
)
_PART_HISTS = (
    "SELECT store_id, visit_hist FROM week_part_store "
    "WHERE day = ANY(%b) AND part = %s AND {stores} AND days_with_ended > 0"
)
_DAY_HISTS = (
    "SELECT store_id, visit_hist FROM daily_store "
    "WHERE {stores} AND day BETWEEN %s AND %s AND visits_ended > 0"
)


def _connection_lost(exc: psycopg.Error) -> bool:
    """A connection-level failure (server down or restarted, network), as opposed to an SQL error."""
    state = exc.sqlstate
    return state is None or state.startswith(("08", "57P"))


def _upsert(table: str, columns: str, key: Sequence[str]) -> str:
    """INSERT of all `columns` (space-separated) replacing the row of the same `key` (SQLite's INSERT OR
    REPLACE)."""
    cols = columns.split()
    marks = ", ".join(["%s"] * len(cols))
    rest = [c for c in cols if c not in key]
    sets = ", ".join(f"{c} = excluded.{c}" for c in rest)
    return (
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"
    )


def _unnest_upsert(
    table: str, columns: str, key: Sequence[str], *, skip_same: bool = False
) -> tuple[str, tuple[str, ...]]:
    """INSERT of many rows in one statement, replacing those of the same `key` (SQLite's INSERT OR REPLACE):
    `columns` are space-separated name:type pairs, the rows go column by column as arrays (`_by_column`),
    so a batch's rows cost one statement, not one each. The rows' keys must be distinct (PostgreSQL
    refuses to update one row twice in a statement). `skip_same`: a stored row equal to its new version is
    left as it is (no new row version, index entries or WAL for it). Returns the SQL and the column types."""
    cols = [c.split(":") for c in columns.split()]
    arrays = ", ".join(f"%b::{t}[]" for _c, t in cols)
    rest = [c for c, _t in cols if c not in key]
    sets = ", ".join(f"{c} = excluded.{c}" for c in rest)
    old, new = ", ".join(f"t.{c}" for c in rest), ", ".join(f"excluded.{c}" for c in rest)
    same = f" WHERE ({old}) IS DISTINCT FROM ({new})" if skip_same else ""
    sql = (
        f"INSERT INTO {table} AS t ({', '.join(c for c, _t in cols)}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}{same}"
    )
    return sql, tuple(t for _c, t in cols)


def _by_column(rows: Sequence[Sequence[Any]], types: Sequence[str]) -> list[list[Any]]:
    """Rows as one list per column, floats as floats (a list of ints would not bind as float8[])."""
    columns = [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in types]
    for i, t in enumerate(types):
        if t == "float8":
            columns[i] = [None if x is None else float(x) for x in columns[i]]
    return columns


_TOUCH_NODE = (
    "INSERT INTO nodes AS n (store_id, node_id, last_seen_at, last_event_ts) "
    "VALUES (%s, %s, %s, %s) ON CONFLICT (store_id, node_id) DO UPDATE SET "
    "last_seen_at = nullif(greatest(coalesce(n.last_seen_at, ''), "
    "coalesce(excluded.last_seen_at, '')), ''), "
    "last_event_ts = greatest(coalesce(n.last_event_ts, ''), excluded.last_event_ts)"
)


def _unnest_parts(sql: str, types: Sequence[str]) -> tuple[str, str, str, str]:
    """A one-row `INSERT ... VALUES (%s, ..., constants) <tail>` taken apart for an INSERT of many rows from
    arrays (one per placeholder, of `types`): the INSERT's head, the SELECT list (columns c0.. and the
    constants), the arrays' `unnest` with its aliases, and the tail."""
    head, rest = sql.split("VALUES (", 1)
    values, tail = rest.split(")", 1)
    names = iter(f"c{i}" for i in range(len(types)))
    select = ", ".join(next(names) if x.strip() == "%s" else x.strip() for x in values.split(","))
    arrays = ", ".join(f"%b::{t}[]" for t in types)
    aliases = ", ".join(f"c{i}" for i in range(len(types)))
    return head, select, f"unnest({arrays}) AS u({aliases})", tail


def _as_unnest(sql: str, types: Sequence[str]) -> str:
    """A one-row `INSERT ... VALUES (%s, ..., constants) <tail>` as the same INSERT of many rows from arrays
    (one per placeholder, of `types`): one statement for a batch instead of one per row."""
    head, select, rows, tail = _unnest_parts(sql, types)
    return f"{head}SELECT {select} FROM {rows}{tail}"


def _as_unnest_marking_days(sql: str, types: Sequence[str]) -> str:
    """A one-row visit upsert (`INSERT INTO visits ... VALUES (%s, ...) ON CONFLICT ...`, store and visitor
    ids first) as one statement for many rows that also marks dirty the days of those visits before and
    after it: the CTEs see the table as it was before the statement, the upsert returns the rows as they are
    after it. No rows come back to the client and no round trip is needed for the days."""
    head, select, rows, tail = _unnest_parts(sql, types)
    return (
        f"WITH u AS (SELECT * FROM {rows}), "
        "b AS (SELECT o.store_id, o.day FROM visits o JOIN u ON o.store_id = u.c0 AND o.visitor_id = u.c1 "
        "WHERE o.day IS NOT NULL), "
        f"w AS ({head}SELECT {select} FROM u{tail} RETURNING store_id, day) "
        "INSERT INTO dirty_days SELECT store_id, day FROM b UNION SELECT store_id, day FROM w "
        "WHERE day IS NOT NULL ON CONFLICT DO NOTHING"
    )


_DAILY_UPSERT = _unnest_upsert(
    "daily_store",
    (
        "store_id:text day:text visitors:int4 car_browsers:int4 car_entrants:int4 receptions:int4 "
        "visits_ended:int4 visit_s_total:float8 median_visit_s:float8 visit_hist:bytea car_zone_s:float8 "
        "active_hours:int4"
    ),
    ("store_id", "day"),
)
_WEEK_PART_UPSERT = _unnest_upsert(
    "week_part_store",
    (
        "day:text part:text store_id:text visitors:int4 car_browsers:int4 car_entrants:int4 receptions:int4 "
        "open_days:int4 car_zone_s:float8 active_hours:int4 days_with_ended:int4 max_median_visit_s:float8 "
        "visit_hist:bytea"
    ),
    ("day", "part", "store_id"),
    skip_same=True,  # a refresh of one day leaves about half its week's parts as they were
)
_HEAT_DAY_UPSERT = _upsert(
    "heat_day", "store_id day cell_m nx ny person_s grid", ("store_id", "day", "cell_m")
)
_HEAT_HOUR_UPSERT = _upsert(
    "heat_hour", "store_id hour_key day cell_m nx ny person_s grid", ("store_id", "hour_key", "cell_m")
)


@dataclass
class _DayFacts:
    """The facts a rollup refresh reads about each store-day it refreshes, fetched for all of them at once
    (a refresh of hundreds of store-days would otherwise be thousands of round trips)."""

    days: set[tuple[str, str]]
    counts: dict[tuple[str, str], tuple[int, int, int, int]] = field(default_factory=dict)
    durations: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    by_hour: dict[tuple[str, str], dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    dwells: dict[tuple[str, str], list[Row]] = field(default_factory=lambda: defaultdict(list))
    car_entries: dict[tuple[str, str], list[Row]] = field(default_factory=lambda: defaultdict(list))


class _TxState(threading.local):
    conn: Conn | None = None
    locked: set[str]
    facts: _DayFacts | None = None
    deferred: list[tuple[str, Row]]
    seq: dict[tuple[str, str], list[tuple[int, int]]]

    def __init__(self) -> None:
        self.locked = set()
        self.deferred = []
        self.seq = {}


class PgStorage:
    """One PostgreSQL database. `readonly=True` opens it for queries only (no migrations, no writes)."""

    WEEK_PARTS_STORES_PER_STEP = 200
    CONNECT_TIMEOUT_S = 5
    PARTITION_MONTHS_BACK = 1
    PARTITION_MONTHS_AHEAD = 3
    """Partitions created ahead at start (others are created when a write first needs them)."""

    def __init__(self, dsn: str, *, readonly: bool = False, pool_size: int = 4) -> None:
        self.dsn = dsn
        self.where = redact(dsn)
        self.readonly = readonly
        self.has_week_parts = True
        self._floor_plans: bool | None = None
        self._tx = _TxState()
        self._partitions = Partitions()
        kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": self.CONNECT_TIMEOUT_S}
        if readonly:
            kwargs["options"] = "-c default_transaction_read_only=on"
        self._key = (os.getpid(), dsn, readonly)
        self._closed = False
        shared = _shared_pool(self._key)
        if shared is not None:  # another storage of this process on the same database: share its pool
            self.pool = shared
            try:
                with shared.connection(timeout=self.CONNECT_TIMEOUT_S) as conn:
                    if readonly:
                        self._check_schema(conn)
                    else:
                        self._migrate(conn)
            except PoolTimeout as exc:
                _release_pool(self._key)
                raise StorageUnavailableError(f"cannot connect to {self.where}: {exc}") from exc
            except BaseException:
                _release_pool(self._key)
                raise
            return
        try:  # one direct connection first: its error says why (password, host, database) at once
            first: Conn = psycopg.connect(dsn, **kwargs)
        except psycopg.OperationalError as exc:
            raise StorageUnavailableError(f"cannot connect to {self.where}: {_first_line(exc)}") from exc
        try:
            if readonly:
                self._check_schema(first)
            else:
                self._migrate(first)
        finally:
            first.close()
        pool: ConnectionPool[Conn] = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            kwargs=kwargs,
            check=ConnectionPool.check_connection,
            timeout=30.0,
            name="aggregator",
            open=True,
        )
        self.pool = _register_pool(self._key, pool)

    def close(self) -> None:
        """Give back this storage's share of the pool (closed when no storage of the process uses it)."""
        if not self._closed:
            self._closed = True
            _release_pool(self._key)

    # -- connections and transactions -----------------------------------------------------------------

    @contextmanager
    def _conn(self, flush: bool = True) -> Iterator[Conn]:
        """The transaction's connection (its deferred writes sent first unless `flush` is False), or a pooled
        one for one autocommitted statement group."""
        if self._tx.conn is not None:
            if flush and self._tx.deferred:
                self._send_deferred(self._tx.conn)
            yield self._tx.conn
            return
        try:
            with self.pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise StorageUnavailableError(f"no connection to {self.where}: {exc}") from exc
        except psycopg.OperationalError as exc:
            if _connection_lost(exc):
                raise StorageUnavailableError(f"lost {self.where}: {_first_line(exc)}") from exc
            raise

    def _defer(self, sql: str, params: Row) -> None:
        """A write whose result nobody reads: inside a transaction it waits and goes with the next statement
        (or the commit) in one pipeline, instead of a round trip of its own."""
        if self._tx.conn is None:
            with self._conn() as c:
                c.execute(sql, params)
        else:
            self._tx.deferred.append((sql, params))

    def _send_deferred(self, conn: Conn) -> None:
        pending, self._tx.deferred = self._tx.deferred, []
        with conn.pipeline(), conn.cursor() as cur:
            for sql, params in pending:
                cur.execute(sql, params)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing; a lost connection raises `StorageUnavailableError` (nothing was written)."""
        if self._tx.conn is not None:
            raise StorageError("transactions do not nest")
        try:
            with self.pool.connection() as conn, conn.transaction():
                self._tx.conn = conn
                self._tx.locked = set()
                self._tx.deferred = []
                self._tx.seq = {}
                try:
                    yield
                    if self._tx.deferred:
                        self._send_deferred(conn)
                finally:
                    self._tx.deferred = []
                    self._tx.seq = {}
                    self._tx.conn = None
                    self._tx.locked = set()
                    self._tx.facts = None
        except PoolTimeout as exc:
            self._partitions.forget()
            raise StorageUnavailableError(f"no connection to {self.where}: {exc}") from exc
        except psycopg.OperationalError as exc:
            self._partitions.forget()
            if _connection_lost(exc):
                raise StorageUnavailableError(
                    f"lost {self.where} mid-transaction (rolled back): {_first_line(exc)}"
                ) from exc
            raise
        except BaseException:
            self._partitions.forget()
            raise

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._conn(flush=False) as c:
            pending, self._tx.deferred = self._tx.deferred, []
            if not pending:
                return c.execute(sql, params).fetchall()
            with c.pipeline(), c.cursor() as cur:  # the deferred writes and this read: one round trip
                for deferred_sql, deferred_params in pending:
                    cur.execute(deferred_sql, deferred_params)
                cur.execute(sql, params)
                return cur.fetchall()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Row:
        rows = self._all(sql, params)
        if not rows:
            raise StorageError(f"no row from {sql[:60]!r}")
        return rows[0]

    def _many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        with self._conn(flush=False) as c, c.pipeline(), c.cursor() as cur:
            pending, self._tx.deferred = self._tx.deferred, []
            for deferred_sql, deferred_params in pending:
                cur.execute(deferred_sql, deferred_params)
            cur.executemany(sql, rows)

    def _ensure(self, table: str, keys: Iterable[str]) -> None:
        keys = list(keys)
        if self._partitions.missing(table, keys):
            with self._conn() as c:
                self._partitions.ensure(c, table, keys)

    def lock_stores(self, store_ids: Iterable[str]) -> None:
        """Serialise this transaction with every other one writing these stores (until it ends). Locks are
        taken in one global order; a store beyond that order, once others are held, is waited for all the
        same (PostgreSQL reports a deadlock, should one occur, and the batch is rolled back whole)."""
        new = sorted(set(store_ids) - self._tx.locked)
        if not new:
            return
        if self._tx.conn is None:  # statements outside a transaction each commit alone: nothing to hold
            return
        self._tx.conn.execute(
            "SELECT pg_advisory_xact_lock(%s, k) FROM "
            "(SELECT hashtext(s) AS k FROM unnest(%b::text[]) s GROUP BY 1 ORDER BY 1) q",
            (STORE_LOCK_NAMESPACE, new),
        )
        self._tx.locked.update(new)

    def _bump_rollups_version(self) -> None:
        with self._conn() as c:
            c.execute("UPDATE rollups_version SET version = version + 1")

    def _try_lock_stores(self, store_ids: Iterable[str]) -> set[str]:
        """The stores of `store_ids` this transaction holds or could lock without waiting."""
        assert self._tx.conn is not None
        got = set(store_ids) & self._tx.locked
        for s in sorted(set(store_ids) - got):
            row = self._tx.conn.execute(
                "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))", (STORE_LOCK_NAMESPACE, s)
            ).fetchone()
            if row is not None and row[0]:
                got.add(s)
                self._tx.locked.add(s)
        return got

    # -- schema ---------------------------------------------------------------------------------------

    def data_version(self) -> int:
        """Changes whenever a committed transaction changed daily rollups (what cached periods are summed
        from): every such write bumps `rollups_version` in its transaction."""
        return int(self._one("SELECT version FROM rollups_version")[0])

    def schema_version(self) -> int:
        with self._conn() as c:
            return self._version(c)

    @staticmethod
    def _version(conn: Conn) -> int:
        row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if row is None or not row[0]:
            return 0
        found = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(found[0] or 0) if found is not None else 0

    def _check_schema(self, conn: Conn) -> int:
        version = self._version(conn)
        known = PG_MIGRATIONS[-1].version
        if version > known:
            raise SchemaTooNewError(self.where, version, known)
        if version == 0:
            raise StorageError(
                f"database {self.where} holds no aggregator schema (ingest into it or run "
                "`showroom aggregator migrate` first)"
            )
        return version

    def migrate(self) -> int:
        with self._conn() as c:
            return self._migrate(c)

    def _migrate(self, conn: Conn) -> int:
        """Apply pending migrations (one process at a time); returns the schema version now in place."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", MIGRATION_LOCK)
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version integer PRIMARY KEY, description text NOT NULL, applied_at text NOT NULL)"
            )
            current = self._version(conn)
            known = PG_MIGRATIONS[-1].version
            if current > known:
                raise SchemaTooNewError(self.where, current, known)
            for m in PG_MIGRATIONS:
                if m.version <= current:
                    continue
                for stmt in m.statements:
                    conn.execute(stmt)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                    (m.version, m.description, datetime.now(UTC).isoformat()),
                )
                log.info("applied migration %d: %s", m.version, m.description)
                current = m.version
            months = months_around(date.today(), self.PARTITION_MONTHS_BACK, self.PARTITION_MONTHS_AHEAD)
            for table in PARTITIONED:
                self._partitions.ensure(conn, table, [f"{y:04d}-{m + 1:02d}" for y, m in months])
        return current

    # -- raw events and quarantine --------------------------------------------------------------------

    def known_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        rows = self._all("SELECT event_id FROM events WHERE event_id = ANY(%b)", (list(event_ids),))
        return {str(r[0]) for r in rows}

    def insert_events(self, rows: Sequence[EventRecord]) -> None:
        """Rows as for `SqliteStorage.insert_events`, known to be new (checked under the stores' locks): one
        COPY, so a duplicate fails the whole batch rather than being stored twice."""
        if not rows:
            return
        self._tx.facts = None  # a fact written: what a refresh read before is stale
        self.lock_stores(str(r[1]) for r in rows)
        self._ensure("events", {str(r[5]) for r in rows})
        self._prefetch_seq_ranges({(str(r[1]), str(r[2])) for r in rows})
        copy_sql = "COPY events (event_id, store_id, node_id, seq, type, ts, received_at, payload) FROM STDIN"
        with self._conn() as c, c.cursor() as cur, cur.copy(copy_sql) as copy:
            for r in rows:
                copy.write_row(r)

    def _prefetch_seq_ranges(self, nodes: set[tuple[str, str]]) -> None:
        """Every node's received ranges in one query, kept for the transaction (its stores are locked)."""
        if self._tx.conn is None:
            return
        wanted = sorted(nodes - set(self._tx.seq))
        if not wanted:
            return
        for key in wanted:
            self._tx.seq[key] = []
        for store_id, node_id, lo, hi in self._all(
            "SELECT r.store_id, r.node_id, lo, hi FROM node_seq_ranges r "
            "JOIN unnest(%b::text[], %b::text[]) AS k(s, n) ON r.store_id = k.s AND r.node_id = k.n "
            "ORDER BY 1, 2, 3",
            ([k[0] for k in wanted], [k[1] for k in wanted]),
        ):
            self._tx.seq[(str(store_id), str(node_id))].append((int(lo), int(hi)))

    def insert_quarantine(self, rows: Sequence[QuarantineRecord]) -> None:
        self._many(
            "INSERT INTO quarantine (received_at, source, topic, reason_code, reason, payload_size, "
            "payload_head) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            rows,
        )

    def add_counters(self, counts: dict[str, int]) -> None:
        # In name order: two transactions bumping the same counters never wait on each other crosswise.
        self._many(
            "INSERT INTO counters VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value",
            sorted((k, v) for k, v in counts.items() if v),
        )

    def counters(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._all("SELECT name, value FROM counters")}

    @as_records(QuarantineRow)
    def quarantine_rows(self, limit: int = 100) -> list[Row]:
        return self._all(
            "SELECT id, received_at, source, topic, reason_code, reason, payload_size, payload_head "
            "FROM quarantine ORDER BY id DESC LIMIT %s",
            (limit,),
        )

    def raw_events(self, store_id: str | None = None) -> Iterator[StoredEventRow]:
        """Stored payloads in time order, streamed."""
        sql = "SELECT event_id, type, payload, received_at FROM events"
        params: tuple[str, ...] = ()
        if store_id is not None:
            sql, params = sql + " WHERE store_id = %s", (store_id,)
        with self._conn() as c, c.cursor() as cur:
            yield from map(StoredEventRow._make, cur.stream(sql + " ORDER BY ts, event_id", params))

    def count_events(self) -> int:
        return int(self._one("SELECT count(*) FROM events")[0])

    def has_events_in_spans(self, spans: Sequence[EventSpan]) -> list[bool]:
        """For each span, whether any event of its store with `ts` in it is stored (rollups may exist
        without), in one round trip (a league of 2,000 stores asks
        thousands). The LIMIT keeps each span an index probe of its own store (never a scan of the events)."""
        if not spans:
            return []
        rows = self._all(
            f"SELECT s.i FROM {_SPANS} "
            f"CROSS JOIN LATERAL (SELECT 1 FROM events e WHERE {_IN_SPAN} LIMIT 1) x",
            _span_arrays(spans),
        )
        found = {int(r[0]) - 1 for r in rows}
        return [i in found for i in range(len(spans))]

    def events_in_spans(
        self, spans: Sequence[EventSpan], types: Sequence[str]
    ) -> list[list[EventPayloadRow]]:
        """For each span, its store's events of `types` in it, (type, payload) in time order, in one round
        trip.
        The ordered subquery stays a per-span index scan (it cannot be merged into a join)."""
        out: list[list[EventPayloadRow]] = [[] for _ in spans]
        if not spans:
            return out
        rows = self._all(
            f"SELECT s.i, x.type, x.payload FROM {_SPANS} CROSS JOIN LATERAL (SELECT e.ts, e.type, e.payload "
            f"FROM events e WHERE {_IN_SPAN} AND e.type = ANY(%b) ORDER BY e.ts) x ORDER BY s.i, x.ts",
            (*_span_arrays(spans), list(types)),
        )
        for i, type_, payload in rows:
            out[int(i) - 1].append(EventPayloadRow(type_, payload))
        return out

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read inside sees the database as it was at the first one: one repeatable-read, read-only
        transaction on one connection. Nested uses (or a use inside a transaction) join the outer one."""
        if self._tx.conn is not None:
            yield
            return
        try:
            with self.pool.connection() as conn:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                self._tx.conn = conn
                try:
                    yield
                finally:
                    self._tx.conn = None
                    conn.execute("COMMIT")
        except PoolTimeout as exc:
            raise StorageUnavailableError(f"no connection to {self.where}: {exc}") from exc

    # -- visits and per-visitor facts ------------------------------------------------------------------

    def _bulk(self, sql: str, types: Sequence[str], rows: Sequence[Row]) -> None:
        """`sql` (a one-row INSERT, see `_as_unnest`) for all `rows` in one statement, sent with the next
        one; rows whose conflict target repeats must be merged by the caller when `sql` updates on
        conflict."""
        if rows:
            self._defer(_as_unnest(sql, types), tuple(_by_column(rows, types)))

    def _bulk_marking_days(self, sql: str, types: Sequence[str], rows: Sequence[Row]) -> None:
        """A visit upsert (see `_as_unnest_marking_days`) for all `rows`, of distinct visits, in one
        statement sent with the next one, marking the days of its visits before and after it."""
        if rows:
            self._defer(_as_unnest_marking_days(sql, types), tuple(_by_column(rows, types)))

    def _mark_dirty(self, keys: Iterable[tuple[str, str | None]]) -> None:
        self._bulk(
            "INSERT INTO dirty_days VALUES (%s, %s) ON CONFLICT DO NOTHING",
            ("text", "text"),
            sorted({(s, d) for s, d in keys if d is not None}),
        )

    def _visit_days(self, keys: Iterable[tuple[str, str]]) -> list[tuple[str, str | None]]:
        keys = sorted(set(keys))
        if not keys:
            return []
        rows = self._all(
            "SELECT v.store_id, v.day FROM visits v JOIN unnest(%b::text[], %b::text[]) AS k(s, vid) "
            "ON v.store_id = k.s AND v.visitor_id = k.vid WHERE v.day IS NOT NULL",
            ([k[0] for k in keys], [k[1] for k in keys]),
        )
        return [(str(s), str(d)) for s, d in rows]

    def _write_visits(self, sql: str, types: Sequence[str], rows: Sequence[Row]) -> None:
        """Run a visit upsert and mark the store-days of the visits before and after it. Rows of distinct
        visits go in one statement; a batch holding one visit twice applies its rows one by one, in order
        (each may build on the one before)."""
        self._tx.facts = None
        if not rows:
            return
        self.lock_stores(str(r[0]) for r in rows)
        keys = [(str(r[0]), str(r[1])) for r in rows]
        if len(set(keys)) == len(keys):
            self._bulk_marking_days(sql, types, rows)
            return
        before = self._visit_days(keys)
        self._many(sql, rows)
        self._mark_dirty([*before, *self._visit_days(keys)])

    def upsert_visit_starts(self, rows: Sequence[VisitStartRecord]) -> None:
        """As `SqliteStorage.upsert_visit_starts`."""
        self._write_visits(
            "INSERT INTO visits "
            "(store_id, visitor_id, node_id, has_start, started_at, door_in, day, hour_key) "
            "VALUES (%s, %s, %s, 1, %s, %s, %s, %s) "
            "ON CONFLICT (store_id, visitor_id) DO UPDATE SET has_start = 1, "
            "started_at = excluded.started_at, door_in = excluded.door_in, day = excluded.day, "
            "hour_key = excluded.hour_key",
            ("text",) * 7,
            rows,
        )

    def upsert_visit_ends(self, rows: Sequence[VisitEndRecord]) -> None:
        """As `SqliteStorage.upsert_visit_ends`."""
        self._write_visits(
            "INSERT INTO visits AS v (store_id, visitor_id, node_id, has_end, started_at, ended_at, "
            "duration_s, door_out, end_reason, browsed, entered_car, received, day, hour_key) "
            "VALUES (%s, %s, %s, 1, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (store_id, visitor_id) DO UPDATE SET "
            "has_end = 1, ended_at = excluded.ended_at, duration_s = excluded.duration_s, "
            "door_out = excluded.door_out, end_reason = excluded.end_reason, "
            "browsed = greatest(v.browsed, excluded.browsed), "
            "entered_car = greatest(v.entered_car, excluded.entered_car), "
            "received = greatest(v.received, excluded.received), "
            "started_at = CASE WHEN v.has_start = 1 THEN v.started_at ELSE excluded.started_at END, "
            "day = CASE WHEN v.has_start = 1 THEN v.day ELSE excluded.day END, "
            "hour_key = CASE WHEN v.has_start = 1 THEN v.hour_key ELSE excluded.hour_key END",
            (
                "text",
                "text",
                "text",
                "text",
                "text",
                "float8",
                "text",
                "text",
                "int4",
                "int4",
                "int4",
                "text",
                "text",
            ),
            rows,
        )

    def flag_visits(self, flag: str, rows: Sequence[VisitKey]) -> None:
        """Set `flag` (browsed, entered_car or received) on visits, each (store_id, visitor_id, node_id)."""
        if flag not in ("browsed", "entered_car", "received"):
            raise ValueError(f"unknown visit flag {flag!r}")
        if not rows:
            return
        self._tx.facts = None
        self.lock_stores(str(r[0]) for r in rows)
        first: dict[tuple[str, str], Row] = {}  # one row per visit (its first, as row-by-row upserts keep)
        for r in rows:
            first.setdefault((str(r[0]), str(r[1])), r)
        # A flag leaves a visit's day as it is: the days of the visits before the statement are the ones.
        self._bulk_marking_days(
            f"INSERT INTO visits AS v (store_id, visitor_id, node_id, {flag}) VALUES (%s, %s, %s, 1) "
            f"ON CONFLICT (store_id, visitor_id) DO UPDATE SET {flag} = 1 WHERE v.{flag} = 0",
            ("text", "text", "text"),
            list(first.values()),
        )

    def insert_dwells(self, rows: Sequence[DwellRecord]) -> None:
        if not rows:
            return
        self._tx.facts = None  # a fact written: what a refresh read before is stale
        self.lock_stores(str(r[1]) for r in rows)
        self._bulk(
            "INSERT INTO dwells VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            ("text", "text", "text", "text", "text", "text", "float8", "text"),
            rows,
        )
        self._mark_dirty((str(r[1]), str(r[7])) for r in rows)

    def dwell_totals(self, keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], float]:
        """As `SqliteStorage.dwell_totals`, in one query."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        out = dict.fromkeys(wanted, 0.0)
        for store_id, visitor_id, zone_id, total in self._all(
            "SELECT d.store_id, d.visitor_id, d.zone_id, sum(d.dwell_s) FROM dwells d "
            "JOIN unnest(%b::text[], %b::text[], %b::text[]) AS k(s, v, z) "
            "ON d.store_id = k.s AND d.visitor_id = k.v AND d.zone_id = k.z GROUP BY 1, 2, 3",
            ([k[0] for k in wanted], [k[1] for k in wanted], [k[2] for k in wanted]),
        ):
            out[(str(store_id), str(visitor_id), str(zone_id))] = float(total or 0.0)
        return out

    def insert_car_entries(self, rows: Sequence[CarEntryRecord]) -> None:
        if not rows:
            return
        self._tx.facts = None  # a fact written: what a refresh read before is stale
        self.lock_stores(str(r[1]) for r in rows)
        self._bulk(
            "INSERT INTO car_entries VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            ("text", "text", "text", "text", "text", "text", "float8", "text"),
            rows,
        )
        self._mark_dirty((str(r[1]), str(r[7])) for r in rows)

    # -- rollup refresh -------------------------------------------------------------------------------

    def take_dirty(self) -> list[tuple[str, str]]:
        """The store-days waiting for a refresh of every store this transaction holds or can lock without
        waiting, removed from the list (the others are left to the transaction that holds them)."""
        if self._tx.conn is None:
            raise StorageError("take_dirty needs a transaction")
        stores = {str(r[0]) for r in self._all("SELECT DISTINCT store_id FROM dirty_days")}
        mine = self._try_lock_stores(stores)
        if not mine:
            return []
        rows = self._all(
            "DELETE FROM dirty_days WHERE store_id = ANY(%b) RETURNING store_id, day", (sorted(mine),)
        )
        days = sorted((str(a), str(b)) for a, b in rows)
        self._tx.facts = self._read_day_facts(days) if days else None
        return days

    def _read_day_facts(self, days: Sequence[tuple[str, str]]) -> _DayFacts:
        """Every fact a refresh reads about these store-days, in five queries (see `day_facts`)."""
        facts = _DayFacts(set(days))
        keys = ([d[0] for d in days], [d[1] for d in days])
        join = "JOIN unnest(%b::text[], %b::text[]) AS k(s, d) ON t.store_id = k.s AND t.day = k.d"
        for s_, d, n, b, e, r in self._all(
            "SELECT t.store_id, t.day, count(*), coalesce(sum(browsed), 0), coalesce(sum(entered_car), 0), "
            f"coalesce(sum(received), 0) FROM visits t {join} WHERE (has_start = 1 OR has_end = 1) "
            "GROUP BY 1, 2",
            keys,
        ):
            facts.counts[(s_, d)] = (int(n), int(b), int(e), int(r))
        for s_, d, duration in self._all(
            f"SELECT t.store_id, t.day, duration_s FROM visits t {join} "
            "WHERE has_end = 1 AND duration_s IS NOT NULL AND end_reason IS DISTINCT FROM 'restart' "
            "ORDER BY 1, 2, visitor_id",
            keys,
        ):
            facts.durations[(s_, d)].append(float(duration))
        for s_, d, hour, n in self._all(
            f"SELECT t.store_id, t.day, hour_key, count(*) FROM visits t {join} "
            "WHERE (has_start = 1 OR has_end = 1) AND hour_key IS NOT NULL GROUP BY 1, 2, 3",
            keys,
        ):
            facts.by_hour[(s_, d)][str(hour)] = int(n)
        for s_, d, zone_id, visitor_id, total in self._all(
            f"SELECT t.store_id, t.day, zone_id, visitor_id, sum(dwell_s) FROM dwells t {join} "
            "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
            keys,
        ):
            facts.dwells[(s_, d)].append((zone_id, visitor_id, total))
        for s_, d, car_id, n in self._all(
            f"SELECT t.store_id, t.day, car_id, count(*) FROM car_entries t {join} "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            keys,
        ):
            facts.car_entries[(s_, d)].append((car_id, n))
        return facts

    def _facts(self, store_id: str, day: str) -> _DayFacts | None:
        facts = self._tx.facts
        return facts if facts is not None and (store_id, day) in facts.days else None

    def day_facts(self, store_id: str, day: str) -> DayFacts:
        """From the facts read for every day of the refresh (`take_dirty`), else read for this day alone."""
        key = (store_id, day)
        facts = self._facts(store_id, day) or self._read_day_facts([key])
        return DayFacts(
            *facts.counts.get(key, (0, 0, 0, 0)),
            list(facts.durations.get(key, [])),
            dict(facts.by_hour.get(key, {})),
            [DwellTotalRow(*r) for r in facts.dwells.get(key, [])],
            [CarEntryCountRow(*r) for r in facts.car_entries.get(key, [])],
        )

    def write_daily(self, rows: Sequence[DailyRow]) -> None:
        """As `SqliteStorage.write_daily` (the week parts of the rows' weeks follow)."""
        if not rows:
            return
        self._ensure("daily_store", {str(r[1]) for r in rows})
        self._defer(_DAILY_UPSERT[0], tuple(_by_column(rows, _DAILY_UPSERT[1])))
        self._bump_rollups_version()
        spans: dict[str, tuple[str, str]] = {}
        for r in rows:
            store_id, day = str(r[0]), str(r[1])
            first, last = spans.get(store_id, (day, day))
            spans[store_id] = (min(first, day), max(last, day))
        self._refresh_week_parts(spans)

    def _refresh_week_parts(self, spans: dict[str, tuple[str, str]]) -> None:
        keys: list[tuple[str, str, str]] = []
        rows: list[Row] = []
        stores = list(spans.items())
        cols = ", ".join("t." + c for c in _DAILY_COLS.split(", "))
        for i in range(0, len(stores), self.WEEK_PARTS_STORES_PER_STEP):
            spans_days = []
            for store_id, (first, last) in stores[i : i + self.WEEK_PARTS_STORES_PER_STEP]:
                days = week_days(date.fromisoformat(first), date.fromisoformat(last))
                spans_days.append((store_id, days[0], days[-1]))
                keys.extend((day, part, store_id) for day in days for part in PARTS)
            daily = self._all(  # every store's weeks in one query
                f"SELECT {cols} FROM daily_store t JOIN unnest(%b::text[], %b::text[], %b::text[]) "
                "AS k(s, a, b) ON t.store_id = k.s AND t.day BETWEEN k.a AND k.b",
                ([x[0] for x in spans_days], [x[1] for x in spans_days], [x[2] for x in spans_days]),
            )
            rows.extend(week_part_rows(daily))
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        self._ensure("week_part_store", {str(r[0]) for r in rows})
        if rows:
            self._defer(_WEEK_PART_UPSERT[0], tuple(_by_column(rows, _WEEK_PART_UPSERT[1])))
        stale = sorted(set(keys).difference((r[0], r[1], r[2]) for r in rows))
        self._delete_week_parts(stale)

    def _delete_week_parts(self, keys: Sequence[tuple[str, str, str]]) -> None:
        if not keys:
            return
        with self._conn() as c:
            c.execute(
                "DELETE FROM week_part_store w USING unnest(%b::text[], %b::text[], %b::text[]) "
                "AS k(day, part, store_id) "
                "WHERE w.day = k.day AND w.part = k.part AND w.store_id = k.store_id",
                ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
            )

    def write_hourly_visitors(self, days: Sequence[tuple[str, str, dict[str, int]]]) -> None:
        """In two statements."""
        last = {(str(s), str(d)): by_hour for s, d, by_hour in days}  # a day given twice: its last write
        if not last:
            return
        rows = [(s, h, d, n) for (s, d), by_hour in last.items() for h, n in by_hour.items()]
        self._ensure("hourly_store", {r[1] for r in rows})
        self._defer(
            "UPDATE hourly_store t SET visitors = 0 FROM unnest(%b::text[], %b::text[]) AS k(s, d) "
            "WHERE t.store_id = k.s AND t.day = k.d",
            ([k[0] for k in last], [k[1] for k in last]),
        )
        self._bulk(
            "INSERT INTO hourly_store (store_id, hour_key, day, visitors) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (store_id, hour_key) DO UPDATE SET visitors = excluded.visitors",
            ("text", "text", "text", "int4"),
            rows,
        )

    def write_car_daily(self, days: Sequence[tuple[str, str, Sequence[CarDayRow]]]) -> None:
        """In two statements."""
        last = {(str(s), str(d)): rows for s, d, rows in days}  # a day given twice: its last write
        if not last:
            return
        self._ensure("car_daily", {k[1] for k in last})
        self._defer(
            "DELETE FROM car_daily t USING unnest(%b::text[], %b::text[]) AS k(s, d) "
            "WHERE t.store_id = k.s AND t.day = k.d",
            ([k[0] for k in last], [k[1] for k in last]),
        )
        self._bulk(
            "INSERT INTO car_daily VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            ("text", "text", "text", "int4", "float8", "float8", "bytea", "int4"),
            [(s, d, *r) for (s, d), rows in last.items() for r in rows],
        )

    # -- heat and occupancy ---------------------------------------------------------------------------

    def add_heats(
        self, table: str, grids: Sequence[tuple[Row, str, float, dict[tuple[int, int], float]]]
    ) -> None:
        """As `SqliteStorage.add_heats`: the grids' stored versions read in one query (under the stores'
        locks: the read-modify-write is exact), the merged grids written in one pipeline."""
        if table == "heat_day":
            key_col, upsert = "day", _HEAT_DAY_UPSERT
        elif table == "heat_hour":
            key_col, upsert = "hour_key", _HEAT_HOUR_UPSERT
        else:
            raise ValueError(f"unknown heat table {table!r}")
        if not grids:
            return
        self.lock_stores(str(key[0]) for key, _d, _c, _cells in grids)
        self._ensure(table, {str(key[1]) for key, _d, _c, _cells in grids})
        found = {
            (str(s), str(k), float(c)): (int(nx), int(ny), bytes(g))
            for s, k, c, nx, ny, g in self._all(
                f"SELECT t.store_id, t.{key_col}, t.cell_m, t.nx, t.ny, t.grid FROM {table} t "
                "JOIN unnest(%b::text[], %b::text[], %b::float8[]) AS k(s, t, c) "
                f"ON t.store_id = k.s AND t.{key_col} = k.t AND t.cell_m = k.c",
                (
                    [str(key[0]) for key, _d, _c, _cells in grids],
                    [str(key[1]) for key, _d, _c, _cells in grids],
                    [float(c) for _k, _d, c, _cells in grids],
                ),
            )
        }
        rows: list[Row] = []
        for key, day, cell_m, cells in grids:
            nx, ny, total, blob = add_cells(found.get((str(key[0]), str(key[1]), float(cell_m))), cells)
            if table == "heat_day":
                rows.append((key[0], key[1], cell_m, nx, ny, total, blob))
            else:
                rows.append((key[0], key[1], day, cell_m, nx, ny, total, blob))
        for row in rows:
            self._defer(upsert, row)

    def set_occupancy_minute(self, store_id: str, minute: str, node_id: str, occupancy: int) -> None:
        self._ensure("occupancy_minute", [minute])
        self._defer(
            "INSERT INTO occupancy_minute AS o VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (store_id, minute, node_id) "
            "DO UPDATE SET occupancy_max = greatest(o.occupancy_max, excluded.occupancy_max)",
            (store_id, minute, node_id, occupancy),
        )

    def refresh_hour_occupancy(self, store_id: str, hour_key: str, hour_end: str, day: str) -> None:
        self._ensure("hourly_store", [hour_key])
        self._defer(
            "INSERT INTO hourly_store (store_id, hour_key, day, occupancy_max) SELECT %s, %s, %s, "
            "(SELECT max(s) FROM (SELECT sum(occupancy_max) AS s FROM occupancy_minute "
            "WHERE store_id = %s AND minute >= %s AND minute < %s GROUP BY minute) q) "
            "ON CONFLICT (store_id, hour_key) DO UPDATE SET occupancy_max = excluded.occupancy_max",
            (store_id, hour_key, day, store_id, hour_key, hour_end),
        )

    # -- nodes ----------------------------------------------------------------------------------------

    def touch_nodes(self, rows: Sequence[tuple[str, str, str | None, str]]) -> None:
        """In one statement (rows of one node twice: one by one)."""
        if len({(r[0], r[1]) for r in rows}) < len(rows):
            for row in rows:
                self._defer(_TOUCH_NODE, row)
            return
        self._bulk(_TOUCH_NODE, ("text", "text", "text", "text"), sorted(rows))

    def set_node_heartbeat(self, store_id: str, node_id: str, ts: str, heartbeat_json: str) -> None:
        self._defer(
            "UPDATE nodes SET last_heartbeat_at = %s, heartbeat = %s WHERE store_id = %s "
            "AND node_id = %s AND coalesce(last_heartbeat_at, '') <= %s",
            (ts, heartbeat_json, store_id, node_id, ts),
        )

    def set_node_status(self, store_id: str, node_id: str, ts: str, status: str) -> None:
        self._defer(
            "UPDATE nodes SET status = %s, status_at = %s WHERE store_id = %s AND node_id = %s "
            "AND coalesce(status_at, '') <= %s",
            (status, ts, store_id, node_id, ts),
        )

    def seq_ranges(self, store_id: str, node_id: str) -> list[tuple[int, int]]:
        if (store_id, node_id) in self._tx.seq:
            return list(self._tx.seq[(store_id, node_id)])
        rows = self._all(
            "SELECT lo, hi FROM node_seq_ranges WHERE store_id = %s AND node_id = %s ORDER BY lo",
            (store_id, node_id),
        )
        return [(int(a), int(b)) for a, b in rows]

    def highest_seqs(self, nodes: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """As `SqliteStorage.highest_seqs`, in one query (this transaction's ranges where it wrote them)."""
        wanted = set(nodes)
        out = {k: r[-1][1] for k, r in self._tx.seq.items() if k in wanted and r}
        rest = sorted(wanted - set(self._tx.seq))
        if rest:
            for store_id, node_id, hi in self._all(
                "SELECT r.store_id, r.node_id, max(r.hi) FROM node_seq_ranges r "
                "JOIN unnest(%b::text[], %b::text[]) AS k(s, n) ON r.store_id = k.s AND r.node_id = k.n "
                "GROUP BY 1, 2",
                ([k[0] for k in rest], [k[1] for k in rest]),
            ):
                out[(str(store_id), str(node_id))] = int(hi)
        return out

    def write_seq_ranges(self, nodes: Sequence[tuple[str, str, Sequence[tuple[int, int]]]]) -> None:
        """In three statements."""
        last = {(str(s), str(n)): list(r) for s, n, r in nodes}  # a node given twice: its last write
        if not last:
            return
        keys = sorted(last)
        summary: list[Row] = []
        for key in keys:
            ranges = last[key]
            if self._tx.conn is not None:
                self._tx.seq[key] = list(ranges)
            received = sum(hi - lo + 1 for lo, hi in ranges)
            lo = ranges[0][0] if ranges else None
            hi = ranges[-1][1] if ranges else None
            missing = (hi - lo + 1 - received) if lo is not None and hi is not None else 0
            summary.append((*key, lo, hi, received, missing))
        self._defer(
            "DELETE FROM node_seq_ranges t USING unnest(%b::text[], %b::text[]) AS k(s, n) "
            "WHERE t.store_id = k.s AND t.node_id = k.n",
            ([k[0] for k in keys], [k[1] for k in keys]),
        )
        self._bulk(
            "INSERT INTO node_seq_ranges VALUES (%s, %s, %s, %s)",
            ("text", "text", "int8", "int8"),
            [(*key, lo, hi) for key in keys for lo, hi in last[key]],
        )
        self._defer(
            "UPDATE nodes t SET seq_min = k.lo, seq_max = k.hi, seq_received = k.received, "
            "seq_missing = k.missing FROM unnest(%b::text[], %b::text[], %b::int8[], %b::int8[], "
            "%b::int8[], %b::int8[]) AS k(s, n, lo, hi, received, missing) "
            "WHERE t.store_id = k.s AND t.node_id = k.n",
            tuple(_by_column(summary, ("text", "text", "int8", "int8", "int8", "int8"))),
        )

    def unrecoverable_ranges(self, store_id: str, node_id: str) -> list[tuple[int, int, str, str]]:
        rows = self._all(
            "SELECT lo, hi, reason, reported_at FROM node_seq_unrecoverable "
            "WHERE store_id = %s AND node_id = %s ORDER BY lo",
            (store_id, node_id),
        )
        return [(int(a), int(b), str(r), str(t)) for a, b, r, t in rows]

    def add_unrecoverable_ranges(
        self, store_id: str, node_id: str, ranges: Sequence[tuple[int, int, str]], reported_at: str
    ) -> None:
        self._many(
            "INSERT INTO node_seq_unrecoverable VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(store_id, node_id, lo, hi, reason, reported_at) for lo, hi, reason in ranges],
        )

    @as_records(NodeRow)
    def node_rows(self, store_ids: Sequence[str] | None = None) -> list[Row]:
        sql = (
            "SELECT store_id, node_id, status, status_at, last_seen_at, last_event_ts, last_heartbeat_at, "
            "heartbeat, seq_min, seq_max, seq_received, seq_missing FROM nodes"
        )
        if store_ids is None:
            return self._all(sql + " ORDER BY store_id, node_id")
        return self._all(sql + " WHERE store_id = ANY(%b) ORDER BY store_id, node_id", (list(store_ids),))

    # -- registry -------------------------------------------------------------------------------------

    def write_brand(self, brand_id: str, name: str, weights: dict[str, float]) -> None:
        with self._conn() as c:
            c.execute(
                _upsert("brands", "brand_id name weights", ("brand_id",)),
                (brand_id, name, json.dumps(weights, sort_keys=True)),
            )
        self.add_counters({"registry.version": 1})

    def write_store(self, row: StoreRow) -> None:
        cols = "store_id name brand region timezone floor_w_m floor_h_m browse_min_s cars floor_plan"
        with self._conn() as c:
            c.execute(_upsert("stores", cols, ("store_id",)), row)
        self.add_counters({"registry.version": 1})

    def write_floor_image(self, store_id: str, png: bytes | None) -> None:
        with self._conn() as c:
            c.execute("UPDATE stores SET floor_image = %s WHERE store_id = %s", (png, store_id))
        self.add_counters({"registry.version": 1})

    def floor_image(self, store_id: str) -> bytes | None:
        if not self._has_floor_plans():
            return None
        rows = self._all("SELECT floor_image FROM stores WHERE store_id = %s", (store_id,))
        return None if not rows or rows[0][0] is None else bytes(rows[0][0])

    def _has_floor_plans(self) -> bool:
        """Whether the schema keeps floor plans (a reader may open a database not yet migrated)."""
        if self._floor_plans is None:
            self._floor_plans = self.schema_version() >= 4
        return self._floor_plans

    def registry_version(self) -> int:
        row = self._all("SELECT value FROM counters WHERE name = 'registry.version'")
        return 0 if not row else int(row[0][0])

    def insert_api_token(self, row: ApiTokenRecord) -> None:
        """Exactly one of brand_id and store_id is set."""
        with self._conn() as c:
            c.execute("INSERT INTO api_tokens VALUES (%s, %s, %s, %s, %s)", row)

    def api_token(self, token_sha256: str) -> TokenScope | None:
        """What the token with this hash may read, or None."""
        rows = self._all("SELECT brand_id, store_id FROM api_tokens WHERE token_sha256 = %s", (token_sha256,))
        return TokenScope(*rows[0]) if rows else None

    @as_records(ApiTokenRecord)
    def api_token_rows(self) -> list[Row]:
        return self._all(
            "SELECT token_sha256, brand_id, store_id, note, created_at FROM api_tokens ORDER BY created_at"
        )

    @as_records(StoreRow)
    def store_rows(self) -> list[Row]:
        plan = "floor_plan" if self._has_floor_plans() else "'{}'"
        return self._all(
            "SELECT store_id, name, brand, region, timezone, floor_w_m, floor_h_m, browse_min_s, cars, "
            f"{plan} FROM stores ORDER BY store_id"
        )

    @as_records(BrandRow)
    def brand_rows(self) -> list[Row]:
        return self._all("SELECT brand_id, name, weights FROM brands ORDER BY brand_id")

    def store_ids_with_data(self) -> list[str]:
        return [str(r[0]) for r in self._all("SELECT DISTINCT store_id FROM nodes ORDER BY store_id")]

    def delete_derived(self, store_id: str) -> None:
        self._tx.facts = None
        self.lock_stores([store_id])
        first, last = self._one("SELECT min(day), max(day) FROM daily_store WHERE store_id = %s", (store_id,))
        if first is not None:
            days = week_days(date.fromisoformat(first), date.fromisoformat(last))
            self._delete_week_parts([(day, part, store_id) for day in days for part in PARTS])
        with self._conn() as c:
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
                "dirty_days",
            ):
                c.execute(f"DELETE FROM {table} WHERE store_id = %s", (store_id,))
        self._bump_rollups_version()

    # -- reads for queries ----------------------------------------------------------------------------

    @as_records(DailyRow)
    def daily_rows(self, store_ids: Sequence[str] | None, start: str, end: str) -> list[Row]:
        sql = f"SELECT {_DAILY_COLS} FROM daily_store "
        if store_ids is None:
            return self._all(
                sql + f"WHERE {_KNOWN_STORES} AND day BETWEEN %s AND %s ORDER BY store_id, day", (start, end)
            )
        if len(store_ids) == 1:
            return self._all(
                sql + "WHERE store_id = %s AND day BETWEEN %s AND %s ORDER BY day", (store_ids[0], start, end)
            )
        return self._all(
            sql + "WHERE store_id = ANY(%b) AND day BETWEEN %s AND %s ORDER BY store_id, day",
            (list(store_ids), start, end),
        )

    def _period_union(
        self, store_ids: Sequence[str] | None, start: str, end: str, part_sql: str, day_sql: str
    ) -> tuple[str, list[Any]]:
        if store_ids is None:
            where, params = _KNOWN_STORES, []
        else:
            where, params = "store_id = ANY(%b)", [list(store_ids)]
        plan = period_parts(start, end)
        selects: list[str] = []
        args: list[Any] = []
        for part, days in ((FROM_DAY, plan.from_days), (TO_DAY, plan.to_days)):
            if days:
                selects.append(part_sql.format(stores=where))
                args.extend((list(days), part, *params))
        if plan.days is not None:
            selects.append(day_sql.format(stores=where))
            args.extend((*params, *plan.days))
        return " UNION ALL ".join(selects), args

    @as_records(PeriodSumRow)
    def period_sums(self, store_ids: Sequence[str] | None, start: str, end: str) -> list[Row]:
        union, args = self._period_union(store_ids, start, end, _PART_SUMS, _DAY_SUMS)
        return self._all(
            "SELECT store_id, sum(visitors), sum(car_browsers), sum(car_entrants), sum(receptions), "
            "sum(open_days), sum(car_zone_s), sum(active_hours), sum(days_with_ended), "
            f"max(max_median_visit_s) FROM ({union}) q GROUP BY store_id",
            args,
        )

    @as_records(VisitHistRow)
    def period_visit_hists(self, store_ids: Sequence[str] | None, start: str, end: str) -> list[Row]:
        """As `SqliteStorage.period_visit_hists`, each store's sparse histograms joined into one in the
        database: a sparse blob is its tag and (bin, count) entries, so the entries of several after one tag
        decode to their sum (a league of 2,000 stores moves 2,000 rows instead of 10,000). Histograms in
        the first, zlib encoding (daily rows copied from an old pilot) come as they are."""
        union, args = self._period_union(store_ids, start, end, _PART_HISTS, _DAY_HISTS)
        return self._all(
            f"WITH h AS MATERIALIZED ({union}), t AS (SELECT store_id, visit_hist, "
            "substring(visit_hist FROM 1 FOR 1) = '\\x53'::bytea AS sparse FROM h) "
            "SELECT store_id, '\\x53'::bytea || string_agg(substring(visit_hist FROM 2), ''::bytea) FROM t "
            "WHERE sparse GROUP BY store_id UNION ALL SELECT store_id, visit_hist FROM t WHERE NOT sparse",
            args,
        )

    @as_records(HourlyRow)
    def hourly_rows(self, store_id: str, day: str) -> list[Row]:
        return self._all(
            "SELECT hour_key, visitors, occupancy_max FROM hourly_store WHERE store_id = %s AND day = %s",
            (store_id, day),
        )

    @as_records(CarDayRow)
    def car_daily_rows(self, store_id: str, start: str, end: str) -> list[Row]:
        return self._all(
            "SELECT car_id, browsers, dwell_total_s, dwell_median_s, dwell_hist, entries FROM car_daily "
            "WHERE store_id = %s AND day BETWEEN %s AND %s",
            (store_id, start, end),
        )

    @as_records(HeatGridRow)
    def heat_day_rows(self, store_id: str, start: str, end: str) -> list[Row]:
        return self._all(
            "SELECT cell_m, nx, ny, grid FROM heat_day WHERE store_id = %s AND day BETWEEN %s AND %s",
            (store_id, start, end),
        )

    @as_records(HeatGridRow)
    def heat_hour_rows(self, store_id: str, start_key: str, end_key: str) -> list[Row]:
        return self._all(
            "SELECT cell_m, nx, ny, grid FROM heat_hour "
            "WHERE store_id = %s AND hour_key >= %s AND hour_key < %s",
            (store_id, start_key, end_key),
        )

    def open_visits(self, store_id: str, since: str, until: str) -> int:
        row = self._one(
            "SELECT count(*) FROM visits WHERE store_id = %s AND has_start = 1 AND has_end = 0 "
            "AND started_at >= %s AND started_at <= %s",
            (store_id, since, until),
        )
        return int(row[0])

    def latest_occupancy(self, store_id: str) -> OccupancyRow | None:
        """As `SqliteStorage.latest_occupancy`."""
        rows = self._all(
            "SELECT minute, sum(occupancy_max) FROM occupancy_minute WHERE store_id = %s "
            "GROUP BY minute ORDER BY minute DESC LIMIT 1",
            (store_id,),
        )
        return OccupancyRow(str(rows[0][0]), int(rows[0][1])) if rows else None

    @as_records(LastEventRow)
    def last_event_per_store(self) -> list[Row]:
        return self._all(
            "SELECT store_id, max(last_seen_at), max(last_event_ts) FROM nodes GROUP BY store_id"
        )

    # -- accuracy audits -----------------------------------------------------------------------------

    def door_counts(self, store_id: str, start: str, end: str) -> tuple[int, int]:
        inward = self._one(
            "SELECT count(*) FROM visits WHERE store_id = %s AND started_at >= %s AND started_at < %s",
            (store_id, start, end),
        )[0]
        outward = self._one(
            "SELECT count(*) FROM visits WHERE store_id = %s AND has_end = 1 AND door_out IS NOT NULL "
            "AND ended_at >= %s AND ended_at < %s",
            (store_id, start, end),
        )[0]
        return int(inward), int(outward)

    def insert_audit(self, row: AuditRecord) -> int:
        found = self._one(
            "INSERT INTO audits (store_id, start_ts, end_ts, manual_in, system_in, manual_out, system_out, "
            "auditor, note, recorded_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            row,
        )
        return int(found[0])

    @as_records(AuditRow)
    def audit_rows(self, store_id: str | None = None, limit: int = 1000) -> list[Row]:
        where, args = ("WHERE store_id = %s ", (store_id,)) if store_id is not None else ("", ())
        return self._all(
            "SELECT id, store_id, start_ts, end_ts, manual_in, system_in, manual_out, system_out, auditor, "
            f"note, recorded_at FROM audits {where}ORDER BY end_ts DESC, id DESC LIMIT %s",
            (*args, limit),
        )

    def bulk_write_rollups(
        self,
        *,
        daily: Sequence[DailyRow] = (),
        hourly: Sequence[HourlyRecord] = (),
        car_daily: Sequence[CarDayRecord] = (),
        heat_day: Sequence[HeatDayRecord] = (),
        nodes: Sequence[NodeSeenRecord] = (),
    ) -> None:
        """As `SqliteStorage.bulk_write_rollups` (load tests and data generators)."""
        if daily:
            self._ensure("daily_store", {str(r[1]) for r in daily})
            self._copy_upsert("daily_store", _DAILY_COLS.replace(",", " "), ("store_id", "day"), daily)
            self._bump_rollups_version()
            spans: dict[str, tuple[str, str]] = {}
            for r in daily:
                first, last = spans.get(str(r[0]), (str(r[1]), str(r[1])))
                spans[str(r[0])] = (min(first, str(r[1])), max(last, str(r[1])))
            self._refresh_week_parts(spans)
        if hourly:
            self._ensure("hourly_store", {str(r[1]) for r in hourly})
            self._copy_upsert(
                "hourly_store",
                "store_id hour_key day visitors occupancy_max",
                ("store_id", "hour_key"),
                hourly,
            )
        if car_daily:
            self._ensure("car_daily", {str(r[1]) for r in car_daily})
            self._copy_upsert(
                "car_daily",
                "store_id day car_id browsers dwell_total_s dwell_median_s dwell_hist entries",
                ("store_id", "day", "car_id"),
                car_daily,
            )
        if heat_day:
            self._ensure("heat_day", {str(r[1]) for r in heat_day})
            self._copy_upsert(
                "heat_day", "store_id day cell_m nx ny person_s grid", ("store_id", "day", "cell_m"), heat_day
            )
        self._many(
            "INSERT INTO nodes (store_id, node_id, status, status_at, last_seen_at, last_event_ts) "
            "VALUES (%s, %s, 'online', %s, %s, %s) ON CONFLICT (store_id, node_id) DO UPDATE SET "
            "status = excluded.status, status_at = excluded.status_at, last_seen_at = excluded.last_seen_at, "
            "last_event_ts = excluded.last_event_ts",
            [(s, n, t, t, t) for s, n, t in nodes],
        )

    def _copy_upsert(self, table: str, columns: str, key: Sequence[str], rows: Sequence[Row]) -> None:
        """Many rows replacing those of the same key: COPY into a scratch table, then one upsert (bulk loads:
        several times faster than row-by-row inserts)."""
        cols = columns.split()
        scratch = f"bulk_{table}"
        sets = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in key)
        with self._conn() as c:
            c.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {scratch} (LIKE {table} INCLUDING DEFAULTS) "
                "ON COMMIT DELETE ROWS"
            )
            with c.cursor() as cur, cur.copy(f"COPY {scratch} ({', '.join(cols)}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
            c.execute(
                f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM {scratch} "
                f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"
            )
            c.execute(f"TRUNCATE {scratch}")

    def partition_names(self, table: str) -> list[str]:
        """The partitions `table` has (for operators and tests)."""
        rows = self._all(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass ORDER BY 1",
            (table,),
        )
        return [str(r[0]) for r in rows]


# Pools shared by the storages of one process on one database (the HTTP API opens one per request thread):
# (pid, dsn, readonly) -> (pool, users). The pid keeps a forked child from using its parent's connections.
_POOLS: dict[tuple[int, str, bool], tuple[ConnectionPool[Conn], int]] = {}
_POOLS_LOCK = threading.Lock()


def _shared_pool(key: tuple[int, str, bool]) -> ConnectionPool[Conn] | None:
    with _POOLS_LOCK:
        found = _POOLS.get(key)
        if found is None:
            return None
        _POOLS[key] = (found[0], found[1] + 1)
        return found[0]


def _register_pool(key: tuple[int, str, bool], pool: ConnectionPool[Conn]) -> ConnectionPool[Conn]:
    with _POOLS_LOCK:
        found = _POOLS.get(key)
        if found is None:
            _POOLS[key] = (pool, 1)
            return pool
        _POOLS[key] = (found[0], found[1] + 1)  # another thread opened one meanwhile: use that
    pool.close()
    return found[0]


def _release_pool(key: tuple[int, str, bool]) -> None:
    with _POOLS_LOCK:
        found = _POOLS.get(key)
        if found is None:
            return
        if found[1] > 1:
            _POOLS[key] = (found[0], found[1] - 1)
            return
        del _POOLS[key]
    found[0].close()


def _span_arrays(spans: Sequence[EventSpan]) -> tuple[list[str], list[str], list[str]]:
    return [s.store_id for s in spans], [s.start for s in spans], [s.end for s in spans]


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


__all__ = ["PgStorage", "partition_name"]
