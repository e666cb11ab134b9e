"""The storage backend interface: what the ingester and the queries need from a database.

`SqliteStorage` is the embedded implementation, `PgStorage` the one for brand-wide deployments (several
aggregator processes); callers open either through `aggregator.storage.open_storage(url)` and no caller
changes. Writes take the named records of storage/records.py, and reads return them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from aggregator.storage.records import (
    ApiTokenRecord,
    AuditRecord,
    AuditRow,
    BrandRow,
    CarDayRecord,
    CarDayRow,
    CarEntryRecord,
    DailyRow,
    DayFacts,
    DwellRecord,
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
)

Row = tuple[Any, ...]
"""A plain row as a database driver returns it."""


class StorageBackend(Protocol):
    """Everything the aggregator does with its database."""

    def close(self) -> None: ...

    def data_version(self) -> int: ...

    def schema_version(self) -> int: ...

    def migrate(self) -> int: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    def lock_stores(self, store_ids: Iterable[str]) -> None:
        """Serialise the current transaction with every other writer of these stores until it ends (take
        it before reading what the transaction's writes depend on, such as which event ids are known)."""

    def known_event_ids(self, event_ids: Sequence[str]) -> set[str]: ...

    def insert_events(self, rows: Sequence[EventRecord]) -> None: ...

    def insert_quarantine(self, rows: Sequence[QuarantineRecord]) -> None: ...

    def add_counters(self, counts: dict[str, int]) -> None: ...

    def counters(self) -> dict[str, int]: ...

    def quarantine_rows(self, limit: int = 100) -> list[QuarantineRow]: ...

    def raw_events(self, store_id: str | None = None) -> Iterator[StoredEventRow]: ...

    def count_events(self) -> int: ...

    def has_events_in_spans(self, spans: Sequence[EventSpan]) -> list[bool]: ...

    def events_in_spans(
        self, spans: Sequence[EventSpan], types: Sequence[str]
    ) -> list[list[EventPayloadRow]]: ...

    def snapshot(self) -> AbstractContextManager[None]: ...

    def upsert_visit_starts(self, rows: Sequence[VisitStartRecord]) -> None: ...

    def upsert_visit_ends(self, rows: Sequence[VisitEndRecord]) -> None: ...

    def flag_visits(self, flag: str, rows: Sequence[VisitKey]) -> None: ...

    def insert_dwells(self, rows: Sequence[DwellRecord]) -> None: ...

    def dwell_totals(self, keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], float]:
        """Each (store_id, visitor_id, zone_id)'s total dwell so far, seconds (0.0 where there is none)."""
        ...

    def insert_car_entries(self, rows: Sequence[CarEntryRecord]) -> None: ...

    def take_dirty(self) -> list[tuple[str, str]]: ...

    def day_facts(self, store_id: str, day: str) -> DayFacts:
        """The stored facts of a store-day its rollups are recomputed from (`Ingestor` refreshes)."""
        ...

    def write_daily(self, rows: Sequence[DailyRow]) -> None: ...

    def write_hourly_visitors(self, days: Sequence[tuple[str, str, dict[str, int]]]) -> None:
        """Replace the visitors per hour of each (store_id, day, visitors_by_hour): a refresh's days at once
        (a day given twice: its last)."""
        ...

    def write_car_daily(self, days: Sequence[tuple[str, str, Sequence[CarDayRow]]]) -> None:
        """Replace the per-car rollups of each (store_id, day, rows): a refresh's days at once (a day given
        twice: its last)."""
        ...

    def add_heats(
        self, table: str, grids: Sequence[tuple[Row, str, float, dict[tuple[int, int], float]]]
    ) -> None:
        """Add person-seconds per cell to grids of `table`: each (key, day, cell_m, cells)."""
        ...

    def set_occupancy_minute(self, store_id: str, minute: str, node_id: str, occupancy: int) -> None: ...

    def refresh_hour_occupancy(self, store_id: str, hour_key: str, hour_end: str, day: str) -> None: ...

    def touch_nodes(self, rows: Sequence[tuple[str, str, str | None, str]]) -> None:
        """Each (store_id, node_id, last_seen_at, last_event_ts): the node exists, its latest live receipt
        (`last_seen_at`; None: not a live one) and latest event time move forward only."""
        ...

    def set_node_heartbeat(self, store_id: str, node_id: str, ts: str, heartbeat_json: str) -> None: ...

    def set_node_status(self, store_id: str, node_id: str, ts: str, status: str) -> None: ...

    def seq_ranges(self, store_id: str, node_id: str) -> list[tuple[int, int]]: ...

    def highest_seqs(self, nodes: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Each (store_id, node_id)'s highest received seq, for the nodes that have one (a batch's check
        of all its nodes in one read)."""
        ...

    def write_seq_ranges(self, nodes: Sequence[tuple[str, str, Sequence[tuple[int, int]]]]) -> None:
        """Replace the received seq ranges (and their summary on the node) of each (store_id, node_id,
        ranges): a batch's nodes at once (a node given twice: its last)."""
        ...

    def unrecoverable_ranges(self, store_id: str, node_id: str) -> list[tuple[int, int, str, str]]:
        """(lo, hi, reason, reported_at) of the ranges the node said it cannot send again, by `lo`."""
        ...

    def add_unrecoverable_ranges(
        self, store_id: str, node_id: str, ranges: Sequence[tuple[int, int, str]], reported_at: str
    ) -> None:
        """Record ranges the node cannot send again (a range already recorded keeps its first reason)."""
        ...

    def node_rows(self, store_ids: Sequence[str] | None = None) -> list[NodeRow]: ...

    def write_brand(self, brand_id: str, name: str, weights: dict[str, float]) -> None: ...

    def write_store(self, row: StoreRow) -> None:
        """The store's registry entry; its floor drawing is written apart (`write_floor_image`)."""
        ...

    def write_floor_image(self, store_id: str, png: bytes | None) -> None: ...

    def floor_image(self, store_id: str) -> bytes | None:
        """The store's floor plan drawing (PNG), None without one."""
        ...

    def registry_version(self) -> int: ...

    def insert_api_token(self, row: ApiTokenRecord) -> None: ...

    def api_token(self, token_sha256: str) -> TokenScope | None: ...

    def api_token_rows(self) -> list[ApiTokenRecord]:
        """Every API token as stored: (token_sha256, brand_id, store_id, note, created_at)."""
        ...

    def store_rows(self) -> list[StoreRow]: ...

    def brand_rows(self) -> list[BrandRow]: ...

    def store_ids_with_data(self) -> list[str]: ...

    def delete_derived(self, store_id: str) -> None: ...

    def daily_rows(self, store_ids: Sequence[str] | None, start: str, end: str) -> list[DailyRow]: ...

    def period_sums(self, store_ids: Sequence[str] | None, start: str, end: str) -> list[PeriodSumRow]: ...

    def period_visit_hists(
        self, store_ids: Sequence[str] | None, start: str, end: str
    ) -> list[VisitHistRow]: ...

    def hourly_rows(self, store_id: str, day: str) -> list[HourlyRow]: ...

    def car_daily_rows(self, store_id: str, start: str, end: str) -> list[CarDayRow]: ...

    def heat_day_rows(self, store_id: str, start: str, end: str) -> list[HeatGridRow]: ...

    def heat_hour_rows(self, store_id: str, start_key: str, end_key: str) -> list[HeatGridRow]: ...

    def open_visits(self, store_id: str, since: str, until: str) -> int: ...

    def latest_occupancy(self, store_id: str) -> OccupancyRow | None: ...

    def last_event_per_store(self) -> list[LastEventRow]: ...

    def door_counts(self, store_id: str, start: str, end: str) -> tuple[int, int]: ...

    def insert_audit(self, row: AuditRecord) -> int: ...

    def audit_rows(self, store_id: str | None = None, limit: int = 1000) -> list[AuditRow]: ...

    def bulk_write_rollups(
        self,
        *,
        daily: Sequence[DailyRow] = (),
        hourly: Sequence[HourlyRecord] = (),
        car_daily: Sequence[CarDayRecord] = (),
        heat_day: Sequence[HeatDayRecord] = (),
        nodes: Sequence[NodeSeenRecord] = (),
    ) -> None: ...
