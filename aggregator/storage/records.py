"""The rows that cross the storage boundary, one small typed record per table or read: fields by name.

Immutable named tuples: `row.visitors` rather than `row[2]`, the same fields from every backend, and still
tuples where code (or a test) compares whole rows. Writes take records too (the first group below): a
backend binds their fields in its own statements, and the ingest builds them by name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, ParamSpec, TypeVar

# -- written by the ingest (facts of stored events) --------------------------------------------------


class EventRecord(NamedTuple):
    """A stored contract event (`events`): the raw payload under its idempotency key, `event_id`."""

    event_id: str
    store_id: str
    node_id: str
    seq: int
    type: str
    ts: str
    received_at: str
    payload: str


class QuarantineRecord(NamedTuple):
    """A payload that was refused, with its named reason and the first bytes of it (`quarantine`)."""

    received_at: str
    source: str
    topic: str
    reason_code: str
    reason: str
    payload_size: int
    payload_head: bytes


class VisitStartRecord(NamedTuple):
    """A visit's start (`visits`): its store-local day and hour are the start's."""

    store_id: str
    visitor_id: str
    node_id: str
    started_at: str
    door_id: str | None
    day: str
    hour_key: str


class VisitEndRecord(NamedTuple):
    """A visit's end (`visits`); flags are 0/1 and are OR-ed with those already stored."""

    store_id: str
    visitor_id: str
    node_id: str
    started_at: str
    ended_at: str
    duration_s: float
    door_id: str | None
    end_reason: str
    browsed: int
    entered_car: int
    received: int
    day: str
    hour_key: str


class VisitKey(NamedTuple):
    """The visit a flag (browsed, entered a car, received) is set on."""

    store_id: str
    visitor_id: str
    node_id: str


class DwellRecord(NamedTuple):
    """A stay in a display car's browse zone (`dwells`)."""

    event_id: str
    store_id: str
    visitor_id: str
    zone_id: str
    entered_at: str
    exited_at: str
    dwell_s: float
    day: str


class CarEntryRecord(NamedTuple):
    """A visitor inside a display car (`car_entries`)."""

    event_id: str
    store_id: str
    visitor_id: str
    car_id: str
    entered_at: str
    exited_at: str
    inside_s: float
    day: str


# -- registry, API tokens and audits -------------------------------------------------------------------


class ApiTokenRecord(NamedTuple):
    """An API token, by the SHA-256 of its secret (`api_tokens`); exactly one of brand_id and store_id."""

    token_sha256: str
    brand_id: str | None
    store_id: str | None
    note: str
    created_at: str


class TokenScope(NamedTuple):
    """What a token may read: one brand's stores or one store."""

    brand_id: str | None
    store_id: str | None


class AuditRecord(NamedTuple):
    """A door-count audit as recorded (`audits`; the database gives it its id)."""

    store_id: str
    start_ts: str
    end_ts: str
    manual_in: int
    system_in: int
    manual_out: int | None
    system_out: int | None
    auditor: str
    note: str
    recorded_at: str


# -- rollups written directly (data generators for load tests) -----------------------------------------


class HourlyRecord(NamedTuple):
    store_id: str
    hour_key: str
    day: str
    visitors: int
    occupancy_max: int | None


class CarDayRecord(NamedTuple):
    store_id: str
    day: str
    car_id: str
    browsers: int
    dwell_total_s: float
    dwell_median_s: float | None
    dwell_hist: bytes | None
    entries: int


class HeatDayRecord(NamedTuple):
    store_id: str
    day: str
    cell_m: float
    nx: int
    ny: int
    person_s: float
    grid: bytes


class NodeSeenRecord(NamedTuple):
    store_id: str
    node_id: str
    last_seen_at: str


# -- read back (and the rollups the refresh writes) ---------------------------------------------------


class StoreRow(NamedTuple):
    """A registered store (`stores`)."""

    store_id: str
    name: str
    brand: str
    region: str
    timezone: str
    floor_w_m: float | None
    floor_h_m: float | None
    browse_min_s: float
    cars_json: str
    floor_plan_json: str = "{}"
    """`registry.FloorPlan` as JSON ('{}' where none was loaded)."""


class BrandRow(NamedTuple):
    brand_id: str
    name: str
    weights_json: str


class DailyRow(NamedTuple):
    """A store's local day (`daily_store`): the funnel and the figures health is computed from."""

    store_id: str
    day: str
    visitors: int
    car_browsers: int
    car_entrants: int
    receptions: int
    visits_ended: int
    visit_s_total: float
    median_visit_s: float | None
    visit_hist: bytes | None
    car_zone_s: float
    active_hours: int


class PeriodSumRow(NamedTuple):
    """A store's days of a period summed (`period_sums`)."""

    store_id: str
    visitors: int
    car_browsers: int
    car_entrants: int
    receptions: int
    open_days: int
    car_zone_s: float
    active_hours: int
    days_with_ended: int
    max_median_visit_s: float | None


class VisitHistRow(NamedTuple):
    store_id: str
    visit_hist: bytes


class EventSpan(NamedTuple):
    """A store's events with `ts` in [start, end) (RFC 3339 keys): one of many read in one go."""

    store_id: str
    start: str
    end: str


class HourlyRow(NamedTuple):
    """An hour of a store's local day (`hourly_store`); `hour_key` is the hour's start, UTC."""

    hour_key: str
    visitors: int
    occupancy_max: int | None


class CarDayRow(NamedTuple):
    """One display car on one day (`car_daily`)."""

    car_id: str
    browsers: int
    dwell_total_s: float
    dwell_median_s: float | None
    dwell_hist: bytes | None
    entries: int


class HeatGridRow(NamedTuple):
    """A heat grid: float32 person-seconds, row-major [iy, ix], zlib (`heat_day`, `heat_hour`)."""

    cell_m: float
    nx: int
    ny: int
    grid: bytes


class NodeRow(NamedTuple):
    """An edge node's liveness, last heartbeat and sequence coverage (`nodes`)."""

    store_id: str
    node_id: str
    status: str | None
    status_at: str | None
    last_seen_at: str | None
    last_event_ts: str | None
    last_heartbeat_at: str | None
    heartbeat_json: str | None
    seq_min: int | None
    seq_max: int | None
    seq_received: int
    seq_missing: int


class StoredEventRow(NamedTuple):
    """A stored payload as a rebuild or a migration replays it (`events`, in time order)."""

    event_id: str
    type: str
    payload: str
    received_at: str


class EventPayloadRow(NamedTuple):
    """A stored event's type and payload (a day in progress replayed up to a time)."""

    type: str
    payload: str


class DwellTotalRow(NamedTuple):
    """A visitor's stays in one car's zone on one day, summed."""

    zone_id: str
    visitor_id: str
    dwell_s: float


class CarEntryCountRow(NamedTuple):
    """Entries into one display car on one day."""

    car_id: str
    entries: int


class DayFacts(NamedTuple):
    """What a store-day's rollups are recomputed from (`day_facts`)."""

    visitors: int
    car_browsers: int
    car_entrants: int
    receptions: int
    visit_durations_s: list[float]
    """The day's ended visits, but those a node closed when it restarted after a crash (`end_reason`
    restart): their end is when the node stopped watching, not when the visitor left."""
    visitors_by_hour: dict[str, int]
    dwell_totals: list[DwellTotalRow]
    car_entries: list[CarEntryCountRow]


class OccupancyRow(NamedTuple):
    """The latest minute with heat and the people on the floor then, summed over the store's nodes."""

    minute: str
    occupancy: int


class LastEventRow(NamedTuple):
    store_id: str
    last_seen_at: str | None
    last_event_ts: str | None


class QuarantineRow(NamedTuple):
    id: int
    received_at: str
    source: str
    topic: str
    reason_code: str
    reason: str
    payload_size: int
    payload_head: bytes


class AuditRow(NamedTuple):
    """A door-count audit (`audits`): a person's count of a sample beside the system's."""

    id: int
    store_id: str
    start_ts: str
    end_ts: str
    manual_in: int
    system_in: int
    manual_out: int | None
    system_out: int | None
    auditor: str
    note: str
    recorded_at: str


R = TypeVar("R", bound=tuple[Any, ...])
P = ParamSpec("P")


def as_records(record: Callable[..., R]) -> Callable[[Callable[P, Iterable[Any]]], Callable[P, list[R]]]:
    """Decorate a backend's read so it returns `record`s (a NamedTuple class) made from its plain rows."""

    def decorate(read: Callable[P, Iterable[Any]]) -> Callable[P, list[R]]:
        make = getattr(record, "_make")  # noqa: B009 (NamedTuple's constructor from an iterable)

        @functools.wraps(read)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> list[R]:
            return [make(r) for r in read(*args, **kwargs)]

        return wrapper

    return decorate
