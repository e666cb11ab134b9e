"""Read-only queries for the dashboard, the report command and the HTTP API.

Every screen reads through `Queries`; results are frozen dataclasses. Days are store-local calendar days
(`datetime.date`), periods are inclusive `[start, end]` day ranges, and instants are aware UTC datetimes.
Relative changes are `(now - then) / then`, None where there is no base (no data then, or zero).

    q = Queries.open("var/aggregator.sqlite")
    f = q.funnel("sh-pudong-01", date(2026, 11, 23))
    f.today.visitors, f.today.browse_rate, f.dod.visitors
"""

from __future__ import annotations

import itertools
import json
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Self
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from aggregator import backfill, histogram
from aggregator import health as health_math
from aggregator import league as league_rules
from aggregator.audit import STALE_AFTER, Audit, audit_of
from aggregator.collector import collection_paused
from aggregator.gaps import Gap, gap_report, missing_count
from aggregator.heatgrid import decode_grid
from aggregator.partial_day import FUNNEL_EVENT_TYPES, PartialCounts, StoredEvent, counts_until, cutoff_on
from aggregator.registry import DIMENSIONS, Dimension, FloorPlan
from aggregator.storage import open_storage
from aggregator.storage.base import StorageBackend
from aggregator.storage.records import DailyRow, EventPayloadRow, EventSpan, HeatGridRow, StoreRow
from aggregator.timebuckets import day_span_utc, hours_of_day, parse_ts_key, zone
from aggregator.zones import FloorZone, ZoneFigure, compare_zones, sparse_zone_sums
from edge.events import format_ts

DIMENSION_LABELS: dict[Dimension, str] = {
    "traffic": "Traffic acquisition (visitors per open day)",
    "activity": "Store activity (browse rate)",
    "attractiveness": "Store attractiveness (median visit, s)",
    "car_entry": "Car-entry rate",
    "reception": "Reception rate",
    "heat": "Store heat (person-s in car zones per car per open hour)",
}


# ---------------------------------------------------------------------------------------------------
# Result types
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreCar:
    id: str
    model_name: str
    browse_zone_m: tuple[tuple[float, float], ...]
    interior_zone_m: tuple[tuple[float, float], ...]


NO_PLAN = FloorPlan()
"""A store whose floor plan the registry does not describe (or not yet: see migration 7)."""


@dataclass(frozen=True)
class StoreInfo:
    store_id: str
    name: str
    brand: str
    region: str
    timezone: str
    floor_size_m: tuple[float, float] | None
    cars: tuple[StoreCar, ...]
    registered: bool = True
    """False for a store seen in events but missing from the registry (bucketed in UTC)."""
    browse_min_s: float = 10.0
    """Dwell in a car's browse zone that makes a visitor a car browser."""
    plan: FloorPlan = NO_PLAN
    """Doors, staff areas and named zones of the floor plan, and where its drawing lies (if it has one:
    `Queries.floor_image`)."""


@dataclass(frozen=True)
class FunnelFigures:
    visitors: int
    car_browsers: int
    car_entrants: int
    receptions: int
    browse_rate: float | None
    car_entry_rate: float | None
    reception_rate: float | None
    median_visit_s: float | None


@dataclass(frozen=True)
class FunnelChange:
    """Change of each figure against a base day: counts and the median visit as a fraction,
    `(now - then) / then` (0.5 = +50%); rates in percentage points, `100 * (now - then)` (the `_pp`
    fields: 5.0 = +5 points). None where there is no base (no data then, or a zero count)."""

    visitors: float | None
    car_browsers: float | None
    car_entrants: float | None
    receptions: float | None
    browse_rate_pp: float | None
    car_entry_rate_pp: float | None
    reception_rate_pp: float | None
    median_visit_s: float | None

    json_properties = ("units",)

    @property
    def units(self) -> dict[str, str]:
        """What each change is measured in, for readers of the JSON."""
        return {f: CHANGE_UNITS[f] for f in CHANGE_UNITS}


CHANGE_UNITS: dict[str, str] = {
    "visitors": "fraction",
    "car_browsers": "fraction",
    "car_entrants": "fraction",
    "receptions": "fraction",
    "browse_rate_pp": "percentage_points",
    "car_entry_rate_pp": "percentage_points",
    "reception_rate_pp": "percentage_points",
    "median_visit_s": "fraction",
}


@dataclass(frozen=True)
class Funnel:
    store_id: str
    day: date
    today: FunnelFigures
    day_before: FunnelFigures | None
    week_before: FunnelFigures | None
    """Same weekday a week earlier."""
    dod: FunnelChange
    wow: FunnelChange
    as_of: datetime | None = None
    """The instant (UTC) the figures were read at; None for a funnel read without one."""
    partial: bool = False
    """The day was still in progress at `as_of`: every figure covers it up to `compared_until`."""
    compared_until: str | None = None
    """Store-local wall time ('09:10') up to which today and both base days are counted; None: whole
    days."""
    day_before_until: datetime | None = None
    """UTC end of the day-before figures (the same local time the day before; its midnight when whole)."""
    week_before_until: datetime | None = None
    """UTC end of the week-before figures."""

    @property
    def visitors(self) -> int:
        return self.today.visitors

    @property
    def car_browsers(self) -> int:
        return self.today.car_browsers

    @property
    def car_entrants(self) -> int:
        return self.today.car_entrants

    @property
    def receptions(self) -> int:
        return self.today.receptions

    @property
    def browse_rate(self) -> float | None:
        return self.today.browse_rate

    @property
    def car_entry_rate(self) -> float | None:
        return self.today.car_entry_rate

    @property
    def reception_rate(self) -> float | None:
        return self.today.reception_rate

    @property
    def median_visit_s(self) -> float | None:
        return self.today.median_visit_s


@dataclass(frozen=True)
class HourTraffic:
    start_utc: datetime
    local_hour: int
    fold: int
    """1 for the repeated wall-clock hour when clocks go back."""
    label: str
    visitors: int
    last_week_visitors: int | None
    """Same local hour, same weekday last week; None when last week has no data."""
    occupancy_max: int | None


@dataclass(frozen=True, eq=False)
class Heatmap:
    store_id: str
    start: date
    end: date
    cell_m: float
    floor_size_m: tuple[float, float] | None
    grid: npt.NDArray[np.float32]
    """Person-seconds per cell, shape (ny, nx), row iy = y / cell_m from the plan's top edge."""

    @property
    def total_person_s(self) -> float:
        return float(self.grid.sum())


@dataclass(frozen=True)
class CarStats:
    car_id: str
    model_name: str | None
    browsers: int
    dwell_total_s: float
    dwell_median_s: float | None
    entries: int


@dataclass(frozen=True)
class Occupancy:
    store_id: str
    as_of: datetime
    open_visits: int
    """Visits started in the last 12 h that have not ended."""
    floor_occupancy: int | None
    """Most visitors on the floor in the latest reported minute (summed over nodes)."""
    floor_minute: datetime | None


@dataclass(frozen=True)
class ZoneNow:
    zone: FloorZone
    people: float
    """Visitors in the zone on average over the minute (person-seconds / 60; staff excluded)."""


@dataclass(frozen=True)
class ZoneOccupancy:
    """Visitors in each floor zone now: from each node's latest minute of heat within `window` before
    `as_of` (nodes send a minute's heat when it ends, so "now" is one to two minutes old)."""

    store_id: str
    as_of: datetime
    window: timedelta
    minute: datetime | None
    """Start of the oldest of the latest minutes used (the figures are at least this fresh); None when no
    node reported heat within the window."""
    nodes: int
    """Nodes whose minute is counted."""
    floor_people: float
    """Visitors on the whole floor on average over those minutes."""
    zones: tuple[ZoneNow, ...]
    """Every zone but staff areas, most people first."""


@dataclass(frozen=True)
class PeriodFigures:
    visitors: int
    car_browsers: int
    car_entrants: int
    receptions: int
    open_days: int
    browse_rate: float | None
    car_entry_rate: float | None
    reception_rate: float | None
    median_visit_s: float | None


@dataclass(frozen=True)
class HealthDimension:
    name: Dimension
    label: str
    value: float | None
    score: float | None
    brand_top: float | None
    brand_average: float | None
    weight: float


@dataclass(frozen=True)
class Health:
    store_id: str
    brand: str
    start: date
    end: date
    dimensions: tuple[HealthDimension, ...]
    score: float | None
    brand_stores: int
    """How many of the brand's stores had data in the period (the comparison base)."""


@dataclass(frozen=True)
class LeagueRow:
    rank: int
    store: StoreInfo
    figures: PeriodFigures
    health: float | None
    partial: bool = False
    """The period's last day was still in progress at `as_of` (in the store's zone)."""
    as_of: datetime | None = None


@dataclass(frozen=True)
class DailyMetrics:
    day: date
    has_data: bool
    figures: FunnelFigures
    partial: bool = False
    """The day was still in progress at `as_of`: its figures cover it up to then only."""
    as_of: datetime | None = None


@dataclass(frozen=True)
class CameraState:
    camera_id: str
    state: str
    fps: float
    target_fps: float
    inference_ms: float
    dropped_frames: int
    reconnects: int
    quality: str
    detail: str | None


@dataclass(frozen=True)
class NodeHealth:
    store_id: str
    node_id: str
    online: bool
    status: str | None
    status_at: datetime | None
    last_seen_at: datetime | None
    last_heartbeat_at: datetime | None
    cameras: tuple[CameraState, ...]
    outbox_depth: int | None
    oldest_unsent_age_s: float | None
    model_id: str | None
    software_version: str | None
    uptime_s: float | None
    calibration_error_m: dict[str, float] = field(default_factory=dict)
    seq_received: int = 0
    seq_missing: int = 0
    seq_max: int | None = None
    state: str = "online"
    """online; stale (nothing, not even a heartbeat, for two heartbeat periods); offline (its status)."""
    gaps: tuple[Gap, ...] = ()
    """Its `seq` gaps: open (being asked for again), unrecoverable (with the node's reason), not believed."""
    outbox_write_failures: int = 0
    """Outbox writes the node's disk refused since it started (its last heartbeat; 0 from older nodes)."""
    outbox_held: int = 0
    """Payloads the node held in memory, not yet on disk, when it made its last heartbeat."""


@dataclass(frozen=True)
class SilentStore:
    store_id: str
    name: str | None
    last_seen_at: datetime | None
    silent_s: float | None
    """Seconds since the last payload; None when nothing was ever received."""


@dataclass(frozen=True)
class AuditStatus:
    """A store's standing on door-count audits: its last audit (None: never audited) and whether that is
    older than the policy allows."""

    store_id: str
    name: str | None
    last: Audit | None
    stale: bool


@dataclass(frozen=True)
class HistoryLoading:
    """A store whose history is still being backfilled: its comparisons and health are not final."""

    store_id: str
    days_loaded: int
    days_total: int


@dataclass(frozen=True)
class ZoneComparison:
    """Per-zone person-seconds over a period and the period of the same length before, ranked."""

    store_id: str
    start: date
    end: date
    previous_start: date
    previous_end: date
    total_person_s: float
    """Every person-second on the grid in the period (zones may leave floor uncovered)."""
    zones: tuple[ZoneFigure, ...]


@dataclass(frozen=True, eq=False)
class StorePage:
    """Every figure of one store page, read in one database snapshot (`Queries.store_page`), so no two
    parts of the page can disagree about what was stored."""

    store: StoreInfo
    day: date
    start: date
    end: date
    """The period of the heatmap, car ranking and health."""
    as_of: datetime
    funnel: Funnel
    hourly: list[HourTraffic]
    occupancy: Occupancy
    heatmap: Heatmap
    cars: list[CarStats]
    health: Health
    last_audit: Audit | None
    history: HistoryLoading | None = None
    """Set while the store's history is still being loaded (the page says so)."""


@dataclass(frozen=True)
class QuarantinedPayload:
    id: int
    received_at: datetime
    source: str
    topic: str
    reason_code: str
    reason: str
    payload_size: int
    payload_head: bytes


# ---------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def change(now: float | None, then: float | None) -> float | None:
    """`(now - then) / then`; None without a base."""
    if now is None or then is None or then == 0:
        return None
    return (now - then) / then


def _dt(value: str | None) -> datetime | None:
    return None if value is None else parse_ts_key(value)


def _figures(row: DailyRow | None) -> FunnelFigures:
    if row is None:
        return FunnelFigures(0, 0, 0, 0, None, None, None, None)
    visitors, browsers, entrants, receptions = (
        row.visitors,
        row.car_browsers,
        row.car_entrants,
        row.receptions,
    )
    return FunnelFigures(
        visitors,
        browsers,
        entrants,
        receptions,
        _ratio(browsers, visitors),
        _ratio(entrants, browsers),
        _ratio(receptions, visitors),
        None if row.median_visit_s is None else float(row.median_visit_s),
    )


def points(now: float | None, then: float | None) -> float | None:
    """Change of a rate in percentage points, `100 * (now - then)`; None when either is undefined."""
    if now is None or then is None:
        return None
    return 100.0 * (now - then)


def _change(now: FunnelFigures, then: FunnelFigures | None) -> FunnelChange:
    if then is None:
        return FunnelChange(None, None, None, None, None, None, None, None)
    return FunnelChange(
        change(now.visitors, then.visitors),
        change(now.car_browsers, then.car_browsers),
        change(now.car_entrants, then.car_entrants),
        change(now.receptions, then.receptions),
        points(now.browse_rate, then.browse_rate),
        points(now.car_entry_rate, then.car_entry_rate),
        points(now.reception_rate, then.reception_rate),
        change(now.median_visit_s, then.median_visit_s),
    )


def _counts_figures(c: PartialCounts) -> FunnelFigures:
    return FunnelFigures(
        c.visitors,
        c.car_browsers,
        c.car_entrants,
        c.receptions,
        _ratio(c.car_browsers, c.visitors),
        _ratio(c.car_entrants, c.car_browsers),
        _ratio(c.receptions, c.visitors),
        float(np.median(c.durations_s)) if c.durations_s else None,
    )


@dataclass
class _PeriodAcc:
    visitors: int = 0
    browsers: int = 0
    entrants: int = 0
    receptions: int = 0
    open_days: int = 0
    car_zone_s: float = 0.0
    active_hours: int = 0
    days_with_median: int = 0
    single_median: float | None = None
    several_median: float | None = None
    """Days with ended visits > 1: the median of their summed duration histograms (`_read_period`)."""

    def median(self) -> float | None:
        # One day: its exact median; several: read from the summed duration histograms.
        if self.days_with_median == 0:
            return None
        if self.days_with_median == 1:
            return self.single_median
        return self.several_median

    def figures(self) -> PeriodFigures:
        return PeriodFigures(
            self.visitors,
            self.browsers,
            self.entrants,
            self.receptions,
            self.open_days,
            _ratio(self.browsers, self.visitors),
            _ratio(self.entrants, self.browsers),
            _ratio(self.receptions, self.visitors),
            self.median(),
        )


@dataclass(frozen=True)
class _CutPeriod:
    """A store's league period whose last day is in progress: the period up to then, the previous period
    cut at the same local time (None when it cannot be cut), the closed days alone, and that local time."""

    now: league_rules.Counts
    then: league_rules.Counts | None
    closed: league_rules.Counts
    until: str


@dataclass(frozen=True)
class _DayCuts:
    """In one zone, a league period's last day in progress at `as_of` and the previous period's last day
    cut at the same local time: the instants, and their keys for the event reads."""

    start: datetime
    p_start: datetime
    p_cutoff: datetime
    until: str
    as_of_key: str
    start_key: str
    end_key: str
    p_start_key: str
    p_end_key: str
    p_cutoff_key: str

    @classmethod
    def of(cls, end: date, p_end: date, as_of: datetime, tz: ZoneInfo) -> _DayCuts:
        start, stop = day_span_utc(end, tz)
        p_start, p_stop = day_span_utc(p_end, tz)
        wall = _wall(as_of, tz)
        p_cutoff = cutoff_on(p_end, wall, tz)
        keys = (format_ts(t) for t in (as_of, start, stop, p_start, p_stop, p_cutoff))
        return cls(start, p_start, p_cutoff, wall.strftime("%H:%M"), *keys)


@dataclass(frozen=True)
class _BrandBase:
    """What a brand's stores are scored against over a period: each store's dimension values (stores with
    data), the TOP and average of each dimension, and the brand's weights."""

    brand: str
    values: dict[str, dict[Dimension, float | None]]
    tops: dict[Dimension, float | None]
    averages: dict[Dimension, float | None]
    weights: dict[Dimension, float]

    def values_of(self, store_id: str) -> dict[Dimension, float | None]:
        found = self.values.get(store_id)
        return found if found is not None else dict.fromkeys(DIMENSIONS)

    def scores(self, store_id: str) -> dict[Dimension, float | None]:
        v = self.values_of(store_id)
        return {d: health_math.score(v[d], self.tops[d]) for d in DIMENSIONS}

    def health_scores(self) -> dict[str, float | None]:
        """Every store's health score (stores without data in the period are absent: their score is None),
        as `weighted_health` of `scores` gives it, computed for all at once (a brand of thousands)."""
        values = np.array(
            [[np.nan if (x := v[d]) is None else x for d in DIMENSIONS] for v in self.values.values()],
            dtype=np.float64,
        ).reshape(len(self.values), len(DIMENSIONS))
        found = health_math.weighted_healths(values, [self.tops[d] for d in DIMENSIONS], self.weights)
        return {s: None if math.isnan(h) else h for s, h in zip(self.values, found.tolist(), strict=True)}


# ---------------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------------


class Queries:
    """Read-only access to an aggregator database."""

    OPEN_VISIT_WINDOW = timedelta(hours=12)

    PERIOD_CACHE_SIZE = 32

    def __init__(self, storage: StorageBackend, cache_periods: bool = True) -> None:
        """`cache_periods`: keep recent multi-store period figures (league, health) until the database
        changes (any commit by any writer clears them): re-rendering the same period is then cheap."""
        self.storage = storage
        self.cache_periods = cache_periods
        self._registry_cache: tuple[int, dict[str, StoreInfo]] | None = None
        self._period_cache: dict[tuple[tuple[str, ...] | None, date, date, bool], dict[str, _PeriodAcc]] = {}
        self._period_cache_version = -1

    @classmethod
    def open(cls, db_path: str | Path, cache_periods: bool = True) -> Self:
        """Open an existing database read-only (a file path or a database URL, see `open_storage`)."""
        return cls(open_storage(db_path, readonly=True), cache_periods=cache_periods)

    def close(self) -> None:
        self.storage.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- registry -------------------------------------------------------------------------------------

    def _registry(self) -> dict[str, StoreInfo]:
        # The registry changes rarely: re-read it only when its version counter moved.
        version = self.storage.registry_version()
        if self._registry_cache is None or self._registry_cache[0] != version:
            infos = {r.store_id: _store_info(r) for r in self.storage.store_rows()}
            self._registry_cache = (version, infos)
        return self._registry_cache[1]

    def stores(self, brand: str | None = None, region: str | None = None) -> list[StoreInfo]:
        """Registered stores (and stores seen in events but not registered, brand ''), optionally filtered."""
        registry = self._registry()
        out = [
            s
            for s in registry.values()
            if (brand is None or s.brand == brand) and (region is None or s.region == region)
        ]
        if brand is None and region is None:
            for store_id in self.storage.store_ids_with_data():
                if store_id not in registry:
                    out.append(StoreInfo(store_id, store_id, "", "", "UTC", None, (), registered=False))
        return sorted(out, key=lambda s: s.store_id)

    def store(self, store_id: str) -> StoreInfo:
        """One store; `KeyError` if it is neither registered nor seen in events."""
        found = self._registry().get(store_id)
        if found is not None:
            return found
        if store_id in self.storage.store_ids_with_data():
            return StoreInfo(store_id, store_id, "", "", "UTC", None, (), registered=False)
        raise KeyError(f"unknown store {store_id!r}")

    def _store_or_none(self, store_id: str) -> StoreInfo | None:
        try:
            return self.store(store_id)
        except KeyError:
            return None

    def brand_weights(self, brand: str) -> dict[Dimension, float]:
        return self._weights_by_brand().get(brand) or dict.fromkeys(DIMENSIONS, 1.0)

    def _weights_by_brand(self) -> dict[str, dict[Dimension, float]]:
        """Every registered brand's health weights (1.0 where the registry gives none), in one read."""
        out: dict[str, dict[Dimension, float]] = {}
        for brand_id, _name, weights in self.storage.brand_rows():
            loaded = json.loads(weights)
            out.setdefault(brand_id, {d: float(loaded.get(d, 1.0)) for d in DIMENSIONS})
        return out

    # -- one store, one day ---------------------------------------------------------------------------

    def funnel(
        self, store_id: str, day: date, as_of: datetime | None = None, *, as_stored: bool = False
    ) -> Funnel:
        """The day's funnel with day-over-day and week-over-week change, as it stood at `as_of` (default:
        now). A day still in progress at `as_of` (in the store's zone) is compared with the day before and
        the same weekday a week before up to the same local time; a closed day with whole days.
        `as_stored`: a day in progress is read as stored (its rollup, like every other figure of a live
        page) rather than cut at `as_of`, for a page read now whose `as_of` is rounded to the minute.
        ValueError when `as_of` is before the day begins."""
        as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
        info = self._store_or_none(store_id)
        tz = zone(info.timezone if info else "UTC")
        start, end = day_span_utc(day, tz)
        if as_of < start:
            raise ValueError(
                f"as-of {format_ts(as_of)} is before {day.isoformat()} begins in the store's zone "
                f"({tz.key}, {format_ts(start)})"
            )
        prev_day, week_day = day - timedelta(days=1), day - timedelta(days=7)
        rows = {r.day: r for r in self.storage.daily_rows([store_id], week_day.isoformat(), day.isoformat())}
        if as_of >= end:  # a closed day: whole days
            today = _figures(rows.get(day.isoformat()))
            prev_row, week_row = rows.get(prev_day.isoformat()), rows.get(week_day.isoformat())
            prev = _figures(prev_row) if prev_row is not None else None
            week = _figures(week_row) if week_row is not None else None
            partial, until_text = False, None
            prev_cut, week_cut = day_span_utc(prev_day, tz)[1], day_span_utc(week_day, tz)[1]
        else:  # a day in progress: each base up to the same local time
            until = as_of.astimezone(tz).time().replace(tzinfo=None)
            partial, until_text = True, until.strftime("%H:%M")
            prev_cut, week_cut = cutoff_on(prev_day, until, tz), cutoff_on(week_day, until, tz)
            found = self.day_so_far(store_id, day, as_of, rows.get(day.isoformat()), as_stored=as_stored)
            if found is None:
                # Today's facts are not stored event by event (rollups only): nothing to cut the bases at.
                today, prev, week = _figures(rows.get(day.isoformat())), None, None
            else:
                today = found
                prev = self.day_until(store_id, prev_day, prev_cut)
                week = self.day_until(store_id, week_day, week_cut)
        return Funnel(
            store_id,
            day,
            today,
            prev,
            week,
            _change(today, prev),
            _change(today, week),
            as_of,
            partial,
            until_text,
            prev_cut,
            week_cut,
        )

    def day_so_far(
        self,
        store_id: str,
        day: date,
        as_of: datetime,
        daily_row: DailyRow | None = None,
        *,
        as_stored: bool = False,
    ) -> FunnelFigures | None:
        """A day in progress at `as_of`, counted up to it. When nothing of the day is stored after `as_of`
        (or `as_stored`) its rollup (`daily_row`, read when not given) is the day so far: the same figures
        every other rollup of a page (hourly, health) is read from. Otherwise its events before `as_of` are
        replayed. None when the day's facts are stored as rollups only (history loaded in bulk: it cannot
        be cut)."""
        tz = zone(self._timezone(store_id))
        start, end = day_span_utc(day, tz)
        if daily_row is None:
            found_rows = self.storage.daily_rows([store_id], day.isoformat(), day.isoformat())
            daily_row = found_rows[0] if found_rows else None
        if daily_row is not None and (as_stored or not self._has_events(store_id, as_of, end)):
            if not self._has_events(store_id, start, end):
                return None
            return _figures(daily_row)
        return self.day_until(store_id, day, as_of)

    def _has_events(self, store_id: str, start: datetime, end: datetime) -> bool:
        """Whether any event of the store in [start, end) is stored (rollups may exist without)."""
        return self.storage.has_events_in_spans([EventSpan(store_id, format_ts(start), format_ts(end))])[0]

    def _events(
        self, store_id: str, types: Sequence[str], start: datetime, end: datetime
    ) -> list[EventPayloadRow]:
        """The store's events of `types` in [start, end), in time order."""
        return self.storage.events_in_spans([EventSpan(store_id, format_ts(start), format_ts(end))], types)[0]

    def day_until(self, store_id: str, day: date, cutoff: datetime) -> FunnelFigures | None:
        """The day's funnel up to the instant `cutoff`, replayed from its stored events with the ingest's
        rules (`partial_day`); None when no event of that day is stored (no data, or history loaded as
        rollups only, which cannot be cut)."""
        info = self._store_or_none(store_id)
        tz = zone(info.timezone if info else "UTC")
        start, end = day_span_utc(day, tz)
        if not self._has_events(store_id, start, end):
            return None
        events = self._events(store_id, FUNNEL_EVENT_TYPES, start, cutoff)
        stored = (StoredEvent(str(t), str(p)) for t, p in events)
        browse_min_s = info.browse_min_s if info else 10.0
        return _counts_figures(counts_until(stored, start, cutoff, browse_min_s))

    def hourly_traffic(self, store_id: str, day: date) -> list[HourTraffic]:
        """Visitors per local hour of the day (23, 24 or 25 hours), beside the same weekday last week."""
        tz = zone(self._timezone(store_id))
        now = {str(k): (int(v), o) for k, v, o in self.storage.hourly_rows(store_id, day.isoformat())}
        last_day = day - timedelta(days=7)
        last_rows = self.storage.hourly_rows(store_id, last_day.isoformat())
        has_last = bool(self.storage.daily_rows([store_id], last_day.isoformat(), last_day.isoformat()))
        last_by_wall: dict[tuple[int, int], int] = {}
        for h in hours_of_day(last_day, tz):
            last_by_wall[(h.local_hour, h.fold)] = 0
        for k, v, _o in last_rows:
            local = _dt(str(k))
            assert local is not None
            for h in hours_of_day(last_day, tz):
                if h.key == k:
                    last_by_wall[(h.local_hour, h.fold)] = int(v)
        out = []
        for h in hours_of_day(day, tz):
            visitors, occ = now.get(h.key, (0, None))
            last = last_by_wall.get((h.local_hour, h.fold), 0) if has_last else None
            out.append(
                HourTraffic(
                    h.start_utc,
                    h.local_hour,
                    h.fold,
                    h.label,
                    visitors,
                    last,
                    None if occ is None else int(occ),
                )
            )
        return out

    def car_ranking(self, store_id: str, start: date, end: date) -> list[CarStats]:
        """Per display car over [start, end]: browsers, dwell total and median, entries; most browsed
        first."""
        info = self._store_or_none(store_id)
        names = {c.id: c.model_name for c in info.cars} if info else {}
        acc: dict[str, list[Any]] = {car: [0, 0.0, [], 0, 0, None] for car in names}
        for car_id, browsers, total, med, hist, entries in self.storage.car_daily_rows(
            store_id, start.isoformat(), end.isoformat()
        ):
            a = acc.setdefault(str(car_id), [0, 0.0, [], 0, 0, None])
            a[0] += int(browsers)
            a[1] += float(total)
            if hist:
                a[2].append(hist)
            a[3] += int(entries)
            if int(browsers):
                a[4] += 1
                a[5] = med
        out = []
        for car_id, (browsers, total, hist, entries, days, med) in acc.items():
            median = (
                (None if med is None else float(med))
                if days == 1
                else histogram.median(histogram.decode_sum(hist))
            )
            out.append(CarStats(car_id, names.get(car_id), browsers, total, median, entries))
        return sorted(out, key=lambda c: (-c.browsers, -c.dwell_total_s, c.car_id))

    def heatmap(self, store_id: str, start: date, end: date) -> Heatmap:
        """Person-seconds per floor cell summed over the local days [start, end]."""
        rows = self.storage.heat_day_rows(store_id, start.isoformat(), end.isoformat())
        return self._heatmap(store_id, start, end, rows)

    def heatmap_hours(self, store_id: str, start_utc: datetime, end_utc: datetime) -> Heatmap:
        """Person-seconds per floor cell over the hour buckets starting in [start_utc, end_utc)."""
        rows = self.storage.heat_hour_rows(store_id, format_ts(start_utc), format_ts(end_utc))
        tz = zone(self._timezone(store_id))
        return self._heatmap(store_id, start_utc.astimezone(tz).date(), end_utc.astimezone(tz).date(), rows)

    def _heatmap(self, store_id: str, start: date, end: date, rows: Sequence[HeatGridRow]) -> Heatmap:
        info = self._store_or_none(store_id)
        floor = info.floor_size_m if info else None
        by_cell: dict[float, list[HeatGridRow]] = defaultdict(list)
        for r in rows:
            by_cell[float(r.cell_m)].append(r)
        if not by_cell:
            cell_m = 0.25
            shape = (math.ceil(floor[1] / cell_m), math.ceil(floor[0] / cell_m)) if floor else (0, 0)
            return Heatmap(store_id, start, end, cell_m, floor, np.zeros(shape, dtype=np.float32))
        # Several cell sizes (a reconfigured node) are not mixed: show the finest one that has data.
        cell_m = min(by_cell)
        chosen = by_cell[cell_m]
        nx = max(int(r.nx) for r in chosen)
        ny = max(int(r.ny) for r in chosen)
        if floor:
            nx, ny = max(nx, math.ceil(floor[0] / cell_m)), max(ny, math.ceil(floor[1] / cell_m))
        grid = np.zeros((ny, nx), dtype=np.float64)
        for _c, rnx, rny, blob in chosen:
            g = decode_grid(blob, int(rnx), int(rny))
            grid[: g.shape[0], : g.shape[1]] += g
        return Heatmap(store_id, start, end, cell_m, floor, grid.astype(np.float32))

    def first_day(self, store_id: str) -> date | None:
        """The first local day with figures for the store (the start of its history); None: none yet."""
        rows = self.storage.daily_rows([store_id], "0001-01-01", "9999-12-31")
        return date.fromisoformat(str(rows[0][1])) if rows else None

    def occupancy_now(self, store_id: str, now: datetime | None = None) -> Occupancy:
        now = now or datetime.now(UTC)
        since = format_ts(now - self.OPEN_VISIT_WINDOW)
        open_visits = self.storage.open_visits(store_id, since, format_ts(now))
        latest = self.storage.latest_occupancy(store_id)
        return Occupancy(
            store_id,
            now,
            open_visits,
            None if latest is None else int(latest[1]),
            None if latest is None else _dt(str(latest[0])),
        )

    LIVE_ZONE_WINDOW = timedelta(minutes=5)
    """How old a node's latest minute of heat may be to count as "now"."""

    def zone_occupancy_now(self, store_id: str, now: datetime | None = None) -> ZoneOccupancy:
        """Visitors in each zone of the floor (`floor_zones`, staff areas left out) now: each node's
        latest minute of heat within `LIVE_ZONE_WINDOW`, its person-seconds per zone over 60, summed over
        the nodes (each covers its own part of the floor)."""
        now = (now or datetime.now(UTC)).astimezone(UTC)
        window = self.LIVE_ZONE_WINDOW
        rows = self._events(store_id, ["heat"], now - window, now + timedelta(milliseconds=1))
        latest: dict[str, dict[str, Any]] = {}
        for _type, payload in rows:
            data = json.loads(payload)
            node = str(data["node_id"])
            if node not in latest or str(data["minute"]) >= str(latest[node]["minute"]):
                latest[node] = data
        zones = [z for z in self.floor_zones(store_id) if z.kind != "staff"]
        people = dict.fromkeys((z.zone_id for z in zones), 0.0)
        floor = 0.0
        for data in latest.values():
            cells = [(int(c[0]), int(c[1]), float(c[2])) for c in data["cells"]]
            for zone_id, person_s in sparse_zone_sums(cells, float(data["cell_m"]), zones).items():
                people[zone_id] += person_s / 60.0
            floor += sum(c[2] for c in cells) / 60.0
        minute = _dt(min(str(d["minute"]) for d in latest.values())) if latest else None
        ranked = sorted(zones, key=lambda z: (-people[z.zone_id], z.zone_id))
        return ZoneOccupancy(
            store_id,
            now,
            window,
            minute,
            len(latest),
            floor,
            tuple(ZoneNow(z, people[z.zone_id]) for z in ranked),
        )

    # -- periods --------------------------------------------------------------------------------------

    def daily_series(
        self, store_id: str, start: date, end: date, as_of: datetime | None = None
    ) -> list[DailyMetrics]:
        """One entry per local day in [start, end], zeros where nothing was reported. The day in progress
        at `as_of` (default now) is marked `partial` and counted up to `as_of`; later days have no data."""
        as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
        tz = zone(self._timezone(store_id))
        rows = {r.day: r for r in self.storage.daily_rows([store_id], start.isoformat(), end.isoformat())}
        out = []
        d = start
        while d <= end:
            row = rows.get(d.isoformat())
            day_start, day_end = day_span_utc(d, tz)
            if as_of < day_start:
                out.append(DailyMetrics(d, False, _figures(None), False, as_of))
            elif as_of < day_end:
                so_far = self.day_so_far(store_id, d, as_of, row)
                figures = so_far if so_far is not None else _figures(row)
                out.append(DailyMetrics(d, row is not None or figures.visitors > 0, figures, True, as_of))
            else:
                out.append(DailyMetrics(d, row is not None, _figures(row), False, as_of))
            d += timedelta(days=1)
        return out

    def _period(
        self, store_ids: Sequence[str] | None, start: date, end: date, medians: bool = True
    ) -> dict[str, _PeriodAcc]:
        """Per store, the period's sums and duration histograms (cached while the database is unchanged).
        `medians=False`: the sums alone (no histograms read; `median()` is then None where it needs them)."""
        if not self.cache_periods or (store_ids is not None and len(store_ids) <= 1):
            return self._read_period(store_ids, start, end, medians)
        version = self.storage.data_version()
        if version != self._period_cache_version:
            self._period_cache.clear()
            self._period_cache_version = version
        key = (None if store_ids is None else tuple(store_ids), start, end, medians)
        found = self._period_cache.get(key)
        if found is None and not medians:  # the sums of a read with medians serve as well
            found = self._period_cache.get((key[0], start, end, True))
        if found is None:
            if len(self._period_cache) >= self.PERIOD_CACHE_SIZE:
                self._period_cache.pop(next(iter(self._period_cache)))
            found = self._period_cache[key] = self._read_period(store_ids, start, end, medians)
        return found

    def _read_period(
        self, store_ids: Sequence[str] | None, start: date, end: date, medians: bool = True
    ) -> dict[str, _PeriodAcc]:
        """Per store, the period's sums (summed in SQL) and, with `medians`, its days' duration histograms."""
        a, b = start.isoformat(), end.isoformat()
        acc: dict[str, _PeriodAcc] = {}
        for r in self.storage.period_sums(store_ids, a, b):
            acc[str(r.store_id)] = _PeriodAcc(
                visitors=int(r.visitors),
                browsers=int(r.car_browsers),
                entrants=int(r.car_entrants),
                receptions=int(r.receptions),
                open_days=int(r.open_days),
                car_zone_s=float(r.car_zone_s),
                active_hours=int(r.active_hours),
                days_with_median=int(r.days_with_ended),
                single_median=None if r.max_median_visit_s is None else float(r.max_median_visit_s),
            )
        several = {
            store_id: i for i, store_id in enumerate(s for s, x in acc.items() if x.days_with_median > 1)
        }
        if not medians:
            return acc
        if several:
            # Every store's histograms summed and its median read in one numpy pass (thousands of stores).
            blobs: list[bytes] = []
            groups: list[int] = []
            for store_id, blob in self.storage.period_visit_hists(store_ids, a, b):
                if blob and (g := several.get(str(store_id))) is not None:
                    blobs.append(blob)
                    groups.append(g)
            found = histogram.medians(histogram.decode_group_sums(blobs, groups, len(several)))
            for store_id, median in zip(several, found, strict=True):
                acc[store_id].several_median = median
        return acc

    def period(self, store_id: str, start: date, end: date) -> PeriodFigures:
        return self._period([store_id], start, end).get(store_id, _PeriodAcc()).figures()

    def _dimension_values(self, acc: _PeriodAcc, n_cars: int) -> dict[Dimension, float | None]:
        return {
            "traffic": acc.visitors / acc.open_days if acc.open_days else None,
            "activity": _ratio(acc.browsers, acc.visitors),
            "attractiveness": acc.median(),
            "car_entry": _ratio(acc.entrants, acc.browsers),
            "reception": _ratio(acc.receptions, acc.visitors),
            "heat": acc.car_zone_s / n_cars / acc.active_hours if n_cars and acc.active_hours else None,
        }

    def _brand_base(
        self,
        brand_stores: Sequence[StoreInfo],
        accs: dict[str, _PeriodAcc],
        weights: dict[str, dict[Dimension, float]] | None = None,
    ) -> _BrandBase:
        """The values of one brand's stores (or one unregistered store alone) with data in the period, and
        the brand's TOP and average of each dimension. `weights`: every brand's (`_weights_by_brand`), when
        the caller scores several brands; else the brand's are read."""
        values = {
            s.store_id: self._dimension_values(accs[s.store_id], len(s.cars))
            for s in brand_stores
            if s.store_id in accs
        }
        brand = brand_stores[0].brand if brand_stores else ""
        tops: dict[Dimension, float | None] = {}
        avgs: dict[Dimension, float | None] = {}
        for d in DIMENSIONS:
            present = [v[d] for v in values.values() if v[d] is not None]
            vals = [float(x) for x in present if x is not None]
            tops[d] = health_math.brand_top(vals)
            avgs[d] = health_math.brand_average(vals)
        found = self.brand_weights(brand) if weights is None else weights.get(brand)
        return _BrandBase(brand, values, tops, avgs, found or dict.fromkeys(DIMENSIONS, 1.0))

    def _brand_health(
        self,
        brand_stores: Sequence[StoreInfo],
        start: date,
        end: date,
        accs: dict[str, _PeriodAcc] | None = None,
    ) -> dict[str, Health]:
        """Health of every store of one brand (or one unregistered store alone) over the period."""
        if accs is None:
            accs = self._period([s.store_id for s in brand_stores], start, end)
        base = self._brand_base(brand_stores, accs)
        out: dict[str, Health] = {}
        for s in brand_stores:
            v = base.values_of(s.store_id)
            scores = base.scores(s.store_id)
            dims = tuple(
                HealthDimension(
                    d,
                    DIMENSION_LABELS[d],
                    v[d],
                    scores[d],
                    base.tops[d],
                    base.averages[d],
                    base.weights[d],
                )
                for d in DIMENSIONS
            )
            total = health_math.weighted_health(scores, base.weights)
            out[s.store_id] = Health(s.store_id, base.brand, start, end, dims, total, len(base.values))
        return out

    def health(self, store_id: str, start: date, end: date) -> Health:
        """The store's six dimensions against its brand's TOP (p90) and average over [start, end]."""
        info = self._store_or_none(store_id) or StoreInfo(store_id, store_id, "", "", "UTC", None, (), False)
        peers = [s for s in self.stores(brand=info.brand) if s.registered] if info.registered else [info]
        return self._brand_health(peers, start, end)[store_id]

    def league(
        self,
        start: date,
        end: date,
        brand: str | None = None,
        region: str | None = None,
        as_of: datetime | None = None,
    ) -> list[LeagueRow]:
        """Every store's period figures and health (scored within its own brand), best health first. A row
        whose last day is still in progress at `as_of` (default now, in the store's zone) is marked
        `partial` (`league_report` compares such periods fairly)."""
        as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
        with collection_paused():
            return self._league(start, end, brand, region, as_of)

    def _league(
        self, start: date, end: date, brand: str | None, region: str | None, as_of: datetime
    ) -> list[LeagueRow]:
        shown = self.stores(brand=brand, region=region)
        brands: dict[str, list[StoreInfo]] = defaultdict(list)
        for s in self.stores(brand=brand) if brand is not None else self.stores():
            if s.registered:
                brands[s.brand].append(s)
        # One read of the period's daily rows serves every brand's comparison and the figures shown.
        accs = self._period(None if brand is None else [s.store_id for s in brands[brand]], start, end)
        # Only the health scores: the same figures as `health` gives, without building its dimensions.
        healths: dict[str, float | None] = {}
        for peers in [*brands.values(), *([s] for s in shown if not s.registered)]:
            scored = self._brand_base(peers, accs).health_scores()
            healths.update((s.store_id, scored.get(s.store_id)) for s in peers)
        rows = [(s, accs.get(s.store_id, _PeriodAcc()).figures(), healths.get(s.store_id)) for s in shown]
        rows.sort(key=lambda r: (r[2] is None, -(r[2] or 0.0), r[0].store_id))
        in_progress = {tz: _in_progress(end, tz, as_of) for tz in {s.timezone for s in shown}}
        return [LeagueRow(i + 1, s, f, h, in_progress[s.timezone], as_of) for i, (s, f, h) in enumerate(rows)]

    # -- one consistent read of a page ----------------------------------------------------------------

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every query inside reads the database as it was at the first read (one read transaction)."""
        with self.storage.snapshot():
            yield

    def store_page(
        self,
        store_id: str,
        day: date,
        start: date,
        end: date,
        as_of: datetime | None = None,
        *,
        as_stored: bool = True,
    ) -> StorePage:
        """Every figure of the store page, read in one snapshot: the day's funnel, its hourly traffic,
        occupancy at `as_of` (default now; a live page rounds it to the minute), the last door-count audit,
        and the heatmap, car ranking and health over [start, end]. A day in progress is read as stored,
        like every other figure, and compared with its base days up to `as_of`'s local time; with
        `as_stored=False` the funnel is cut at `as_of` too (a summary of the day as it stood then)."""
        as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
        with self.snapshot():
            audits = self.audits(store_id, 1)
            return StorePage(
                store=self.store(store_id),
                day=day,
                start=start,
                end=end,
                as_of=as_of,
                funnel=self.funnel(store_id, day, as_of, as_stored=as_stored),
                hourly=self.hourly_traffic(store_id, day),
                occupancy=self.occupancy_now(store_id, as_of),
                heatmap=self.heatmap(store_id, start, end),
                cars=self.car_ranking(store_id, start, end),
                health=self.health(store_id, start, end),
                last_audit=audits[0] if audits else None,
                history=self.history_loading(store_id),
            )

    # -- zones of the floor ---------------------------------------------------------------------------

    def floor_image(self, store_id: str) -> bytes | None:
        """The store's floor plan drawing (PNG, at most `registry.FLOOR_IMAGE_MAX_PX` a side), if any."""
        return self.storage.floor_image(store_id)

    def floor_zones(self, store_id: str) -> list[FloorZone]:
        """The zones the registry knows for the store: each display car's browse zone (without its
        interior) and its interior, then the floor plan's zones (reception, negotiation, entrance...) and
        staff areas."""
        out: list[FloorZone] = []
        store = self._registry_store(store_id)
        for c in store.cars:
            if len(c.browse_zone_m) >= 3:
                out.append(
                    FloorZone(
                        f"{c.id}.browse", "car_browse", c.model_name, c.browse_zone_m, c.interior_zone_m
                    )
                )
            if len(c.interior_zone_m) >= 3:
                out.append(FloorZone(f"{c.id}.interior", "car_interior", c.model_name, c.interior_zone_m))
        for z in store.plan.zones:
            out.append(FloorZone(f"zone.{z.id}", z.kind, z.name, tuple(z.polygon_m)))
        for a in store.plan.staff_areas:
            out.append(FloorZone(f"staff.{a.id}", "staff", a.name or a.id, tuple(a.polygon_m)))
        return out

    def zone_comparison(
        self, store_id: str, start: date, end: date, extra_zones: Sequence[FloorZone] = ()
    ) -> ZoneComparison:
        """Person-seconds per floor zone over [start, end] beside the period of the same length before,
        ranked (`aggregator.zones`): every car's browse zone and interior from the registry, plus
        `extra_zones` (reception, negotiation, entrance... as the floor plan draws them)."""
        n = (end - start).days + 1
        p_start, p_end = start - timedelta(days=n), end - timedelta(days=n)
        zones = [*self.floor_zones(store_id), *extra_zones]
        with self.snapshot():
            now = self.heatmap(store_id, start, end)
            before = self.heatmap(store_id, p_start, p_end)
        figures = compare_zones(now.grid, before.grid, now.cell_m, zones, before.cell_m)
        return ZoneComparison(store_id, start, end, p_start, p_end, now.total_person_s, tuple(figures))

    def _registry_store(self, store_id: str) -> StoreInfo:
        found = self._store_or_none(store_id)
        if found is None:
            raise KeyError(f"unknown store {store_id!r}")
        return found

    # -- HQ's league ----------------------------------------------------------------------------------

    def league_report(
        self,
        start: date,
        end: date,
        as_of: datetime | None = None,
        brand: str | None = None,
        region: str | None = None,
    ) -> league_rules.LeagueReport:
        """Every store's period figures against the period of the same length before, health ranked within
        its brand (with the brand's size), outliers, partial and missing days, and totals per brand and
        region (`aggregator.league`). A period whose last day is in progress at `as_of` (default now; in
        each store's zone) is counted up to then, and the previous period's last day up to the same local
        time."""
        if end < start:
            raise ValueError(f"end {end} is before start {start}")
        with collection_paused():
            return self._league_report(
                start, end, (as_of or datetime.now(UTC)).astimezone(UTC), brand, region
            )

    def _league_report(
        self, start: date, end: date, as_of: datetime, brand: str | None, region: str | None
    ) -> league_rules.LeagueReport:
        n = (end - start).days + 1
        p_start, p_end = start - timedelta(days=n), end - timedelta(days=n)
        every = self.stores(brand=brand)
        # As `stores(brand, region)` gives (a region names registered stores only), from the one read.
        shown = every if region is None else [s for s in every if s.registered and s.region == region]
        brands: dict[str, list[StoreInfo]] = defaultdict(list)
        for s in every:
            if s.registered:
                brands[s.brand].append(s)
        ids = None if brand is None else [s.store_id for s in brands[brand]]
        zones = {s.timezone for s in shown}
        in_progress = {tz: _in_progress(end, tz, as_of) for tz in zones}
        future = {tz: _days_ahead(end, tz, as_of) for tz in zones}
        with self.snapshot():
            now_accs = self._period(ids, start, end)
            # The previous period's medians make only the health of a store whose last day is closed; the
            # trend is visitors per open day (sums alone).
            score_before = not all(in_progress.values())
            before_accs = self._period(ids, p_start, p_end, score_before)
            trend_accs = self._period(
                ids, start - timedelta(days=league_rules.TREND_DAYS), start - timedelta(days=1), False
            )
            cuts = self._league_cuts(
                [s for s in shown if in_progress[s.timezone]], end, p_end, as_of, n, now_accs, before_accs
            )
            healths: dict[str, float | None] = {}
            before_healths: dict[str, float | None] = {}
            sizes: dict[str, int] = {}
            weights = self._weights_by_brand()
            for peers in [*brands.values(), *([s] for s in shown if not s.registered)]:
                base = self._brand_base(peers, now_accs, weights)
                scored = base.health_scores()
                for s in peers:
                    healths[s.store_id] = scored.get(s.store_id)
                    sizes[s.store_id] = len(base.values)
                if score_before:
                    scored = self._brand_base(peers, before_accs, weights).health_scores()
                    before_healths.update((s.store_id, scored.get(s.store_id)) for s in peers)
        by_brand: defaultdict[str, dict[str, float | None]] = defaultdict(dict)
        for s in shown:
            by_brand[s.brand][s.store_id] = healths.get(s.store_id)
        ranks = {k: league_rules.brand_ranks(v) for k, v in by_brand.items()}
        medians = {k: league_rules.median_health(list(v.values())) for k, v in by_brand.items()}
        entries = [
            self._league_entry(
                s,
                n,
                healths,
                before_healths,
                sizes,
                (now_accs, before_accs, trend_accs),
                cuts,
                future,
                ranks[s.brand][s.store_id],
                medians[s.brand],
            )
            for s in shown
        ]
        entries.sort(key=lambda e: (e.brand, e.brand_rank is None, e.brand_rank or 0, e.store_id))
        return league_rules.LeagueReport(
            start,
            end,
            as_of,
            p_start,
            p_end,
            tuple(entries),
            league_rules.totals(entries, "brand"),
            league_rules.totals(entries, "region"),
        )

    def _league_cuts(
        self,
        stores: Sequence[StoreInfo],
        end: date,
        p_end: date,
        as_of: datetime,
        n: int,
        now_accs: dict[str, _PeriodAcc],
        before_accs: dict[str, _PeriodAcc],
    ) -> dict[str, _CutPeriod]:
        """The periods of `stores` (each with its last day in progress at `as_of`) counted up to `as_of`,
        and the previous periods cut at the same local time, all stores at once: a few reads in all, not a
        few per store. Each figure is what `period`, `day_so_far` and `day_until` give store by store:
        the closed days are the period's sums less its last day's rollup (one one-day read per period,
        not a period read), and the day in progress is its rollup or its events replayed, as
        `day_so_far` decides."""
        if not stores:
            return {}
        ids = [s.store_id for s in stores]
        last = {r.store_id: r for r in self.storage.daily_rows(ids, end.isoformat(), end.isoformat())}
        cuts = {tz: _DayCuts.of(end, p_end, as_of, zone(tz)) for tz in {s.timezone for s in stores}}
        probes = []
        for s in stores:
            c = cuts[s.timezone]
            # Events after as_of, events that day at all, events on the previous period's last day.
            probes += [
                EventSpan(s.store_id, c.as_of_key, c.end_key),
                EventSpan(s.store_id, c.start_key, c.end_key),
                EventSpan(s.store_id, c.p_start_key, c.p_end_key),
            ]
        flags = iter(self.storage.has_events_in_spans(probes))
        found = {s.store_id: (next(flags), next(flags), next(flags)) for s in stores}
        # The days replayed from their events: the last day when events are stored after as_of or it has
        # no rollup (else its rollup is the day so far), and, for every store whose day so far is known,
        # the previous period's last day up to the same local time.
        replays: list[tuple[StoreInfo, bool]] = []
        for s in stores:
            after, today_any, before_any = found[s.store_id]
            if today_any and (after or s.store_id not in last):
                replays.append((s, True))
            if today_any and before_any:
                replays.append((s, False))
        spans = [
            EventSpan(s.store_id, cuts[s.timezone].start_key, cuts[s.timezone].as_of_key)
            if is_today
            else EventSpan(s.store_id, cuts[s.timezone].p_start_key, cuts[s.timezone].p_cutoff_key)
            for s, is_today in replays
        ]
        # The previous period less its last day: only for the stores whose previous period can be cut.
        then_ids = [s.store_id for s, is_today in replays if not is_today]
        p_day = p_end.isoformat()
        p_last = {r.store_id: r for r in self.storage.daily_rows(then_ids, p_day, p_day)} if then_ids else {}
        replayed: dict[tuple[str, bool], FunnelFigures] = {}
        for (s, is_today), rows in zip(
            replays, self.storage.events_in_spans(spans, FUNNEL_EVENT_TYPES), strict=True
        ):
            c = cuts[s.timezone]
            day_start, cutoff = (c.start, as_of) if is_today else (c.p_start, c.p_cutoff)
            stored = (StoredEvent(str(t), str(p)) for t, p in rows)
            replayed[(s.store_id, is_today)] = _counts_figures(
                counts_until(stored, day_start, cutoff, s.browse_min_s)
            )
        out: dict[str, _CutPeriod] = {}
        for s in stores:
            sid = s.store_id
            after, today_any, _ = found[sid]
            row = last.get(sid)
            so_far: FunnelFigures | None = None
            if today_any:
                so_far = replayed[(sid, True)] if after or row is None else _figures(row)
            then_day = replayed.get((sid, False)) if so_far is not None else None
            closed = _closed(now_accs.get(sid), row, n)
            then = None
            if then_day is not None:
                then = _closed(before_accs.get(sid), p_last.get(sid), n) + _funnel_counts(then_day)
            out[sid] = _CutPeriod(closed + _funnel_counts(so_far), then, closed, cuts[s.timezone].until)
        return out

    def _league_entry(
        self,
        s: StoreInfo,
        n: int,
        healths: dict[str, float | None],
        before_healths: dict[str, float | None],
        sizes: dict[str, int],
        accs: tuple[dict[str, _PeriodAcc], dict[str, _PeriodAcc], dict[str, _PeriodAcc]],
        cuts: dict[str, _CutPeriod],
        future: dict[str, int],
        rank: int | None,
        brand_median: float | None,
    ) -> league_rules.LeagueEntry:
        now_accs, before_accs, trend_accs = accs
        trend = trend_accs.get(s.store_id)
        trend_per_day = trend.visitors / trend.open_days if trend and trend.open_days else None
        cut = cuts.get(s.store_id)
        if cut is not None:
            now, then, until = cut.now, cut.then, cut.until
            closed_days, open_closed, closed_visitors = n - 1, cut.closed.open_days, cut.closed.visitors
            before_health = None
        else:
            future_days = future[s.timezone]
            now = _counts(now_accs.get(s.store_id))
            before = before_accs.get(s.store_id)
            then = _counts(before) if before is not None else None
            until = None
            closed_days, open_closed, closed_visitors = n - future_days, now.open_days, now.visitors
            before_health = before_healths.get(s.store_id)
        health = healths.get(s.store_id)
        size = sizes.get(s.store_id, 0)
        per_day = closed_visitors / open_closed if open_closed else None
        return league_rules.LeagueEntry(
            s.store_id,
            s.name,
            s.brand,
            s.region,
            now,
            then,
            league_rules.period_change(now, then, health, before_health),
            health,
            before_health,
            rank,
            size,
            cut is not None,
            until,
            max(0, closed_days - open_closed),
            per_day,
            trend_per_day,
            league_rules.outliers_of(per_day, trend_per_day, health, brand_median, size),
        )

    # -- nodes and liveness ---------------------------------------------------------------------------

    def nodes(
        self,
        store_ids: Sequence[str] | None = None,
        now: datetime | None = None,
        offline_after_s: float | None = None,
        heartbeat_period_s: float = 30.0,
    ) -> list[NodeHealth]:
        """Each node's liveness, last heartbeat, cameras, outbox backlog and sequence gaps.

        State: `offline` when its last status is (its MQTT last will, or a clean stop); `stale` when nothing
        arrived within `offline_after_s` (default: two heartbeat periods and 10%: two heartbeats missed);
        else `online`. Statuses count from their receipt, so a node's clock cannot make one win."""
        now = now or datetime.now(UTC)
        stale_after_s = 2.2 * heartbeat_period_s if offline_after_s is None else offline_after_s
        out = []
        for r in self.storage.node_rows(store_ids):
            last_seen = _dt(r.last_seen_at)
            hb: dict[str, Any] = json.loads(r.heartbeat_json) if r.heartbeat_json else {}
            if r.status == "offline":
                state = "offline"
            elif last_seen is None or (now - last_seen).total_seconds() > stale_after_s:
                state = "stale"
            else:
                state = "online"
            online = state == "online"
            # A node with nothing missing between its lowest and highest seq has a single range: no gaps,
            # and no read (the installer page lists thousands of nodes).
            gaps = tuple(self.gap_report(r.store_id, r.node_id)) if r.seq_missing else ()
            cams = tuple(
                CameraState(
                    c["camera_id"],
                    c.get("state", "ok"),
                    float(c["fps"]),
                    float(c["target_fps"]),
                    float(c["inference_ms"]),
                    int(c["dropped_frames"]),
                    int(c["reconnects"]),
                    c["quality"],
                    c.get("detail"),
                )
                for c in hb.get("cameras", [])
            )
            out.append(
                NodeHealth(
                    r.store_id,
                    r.node_id,
                    online,
                    r.status,
                    _dt(r.status_at),
                    last_seen,
                    _dt(r.last_heartbeat_at),
                    cams,
                    hb.get("outbox_depth"),
                    hb.get("oldest_unsent_age_s"),
                    hb.get("model_id"),
                    hb.get("software_version"),
                    hb.get("uptime_s"),
                    {str(k): float(v) for k, v in hb.get("calibration_error_m", {}).items()},
                    int(r.seq_received),
                    missing_count(gaps),
                    None if r.seq_max is None else int(r.seq_max),
                    state,
                    gaps,
                    int(hb.get("outbox_write_failures", 0)),
                    int(hb.get("outbox_held", 0)),
                )
            )
        return out

    def seq_gaps(self, store_id: str, node_id: str) -> list[tuple[int, int]]:
        """Missing sequence numbers of a node as inclusive ranges (lost payloads, not yet arrived)."""
        ranges = self.storage.seq_ranges(store_id, node_id)
        return [(a[1] + 1, b[0] - 1) for a, b in itertools.pairwise(ranges)]

    def gap_report(self, store_id: str, node_id: str) -> list[Gap]:
        """A node's `seq` gaps and what became of each (`aggregator.gaps`)."""
        ranges = self.storage.seq_ranges(store_id, node_id)
        if len(ranges) < 2:
            return []
        unrecoverable = [(lo, hi, r) for lo, hi, r, _ in self.storage.unrecoverable_ranges(store_id, node_id)]
        return gap_report(ranges, unrecoverable)

    def silent_stores(self, now: datetime, after: timedelta) -> list[SilentStore]:
        """Stores from which nothing arrived for longer than `after` (or ever), longest silent first."""
        last = {r.store_id: _dt(r.last_seen_at) for r in self.storage.last_event_per_store()}
        names = {s.store_id: s.name for s in self.stores()}
        out = []
        for store_id in sorted(set(names) | set(last)):
            seen = last.get(store_id)
            if seen is None:
                out.append(SilentStore(store_id, names.get(store_id), None, None))
            elif now - seen > after:
                out.append(SilentStore(store_id, names.get(store_id), seen, (now - seen).total_seconds()))
        return sorted(out, key=lambda s: (s.silent_s is not None, -(s.silent_s or 0.0)))

    # -- accuracy audits -------------------------------------------------------------------------------

    def audits(self, store_id: str | None = None, limit: int = 100) -> list[Audit]:
        """Recorded door-count audits, the latest sample first (of one store when given)."""
        return [audit_of(r) for r in self.storage.audit_rows(store_id, limit)]

    def audit_status(self, now: datetime, stale_after: timedelta = STALE_AFTER) -> list[AuditStatus]:
        """Every store's last audit; stale when there is none or its sample ended more than `stale_after`
        before `now`. Stale stores first (never audited, then oldest), then the rest by store id."""
        last: dict[str, Audit] = {}
        for audit in self.audits(limit=1_000_000):
            last.setdefault(audit.store_id, audit)
        names = {s.store_id: s.name for s in self.stores()}
        out = [
            AuditStatus(
                store_id,
                names.get(store_id),
                last.get(store_id),
                store_id not in last or last[store_id].is_stale(now, stale_after),
            )
            for store_id in sorted(set(names) | set(last) | set(self.storage.store_ids_with_data()))
        ]
        return sorted(
            out,
            key=lambda a: (not a.stale, a.last is not None, a.last.end if a.last else now, a.store_id),
        )

    # -- ingest bookkeeping ---------------------------------------------------------------------------

    def history_loading(self, store_id: str) -> HistoryLoading | None:
        """The store's backfill while it is not done (`aggregator.backfill`); None when none is running."""
        counters = self.storage.counters()
        total = counters.get(backfill.total_key(store_id), 0)
        done = counters.get(backfill.done_key(store_id), 0)
        return HistoryLoading(store_id, min(done, total), total) if done < total else None

    def counters(self) -> dict[str, int]:
        """Stored, duplicate and quarantined payload counts (quarantined.<reason> per reason)."""
        return self.storage.counters()

    def quarantine(self, limit: int = 100) -> list[QuarantinedPayload]:
        out = []
        for r in self.storage.quarantine_rows(limit):
            received = _dt(r.received_at)
            assert received is not None
            out.append(
                QuarantinedPayload(
                    r.id,
                    received,
                    r.source,
                    r.topic,
                    r.reason_code,
                    r.reason,
                    r.payload_size,
                    bytes(r.payload_head),
                )
            )
        return out

    def _timezone(self, store_id: str) -> str:
        info = self._store_or_none(store_id)
        return info.timezone if info else "UTC"

    def day_span(self, store_id: str, day: date) -> tuple[datetime, datetime]:
        """[start, end) of the store's local day in UTC."""
        return day_span_utc(day, zone(self._timezone(store_id)))


def _in_progress(day: date, timezone: str, as_of: datetime) -> bool:
    start, end = day_span_utc(day, zone(timezone))
    return start <= as_of < end


def _days_ahead(day: date, timezone: str, as_of: datetime) -> int:
    """Whole days of `day` still ahead at `as_of` in the zone: before it begins, its length in whole days
    (so 0 for a 23-hour day of a clock change), else 0."""
    start, end = day_span_utc(day, zone(timezone))
    return max(0, (end - max(as_of, start)).days) if as_of < start else 0


def _wall(at: datetime, tz: ZoneInfo) -> time:
    """The local wall time of the instant `at` on the clock of `tz`."""
    return at.astimezone(tz).time().replace(tzinfo=None)


def _closed(acc: _PeriodAcc | None, last: DailyRow | None, n: int) -> league_rules.Counts:
    """A period's closed days (all but its last): its sums `acc` less its last day's rollup `last`."""
    if acc is None or n <= 1:
        return league_rules.ZERO
    counts = _counts(acc)
    if last is None:
        return counts
    return league_rules.Counts(
        counts.visitors - last.visitors,
        counts.car_browsers - last.car_browsers,
        counts.car_entrants - last.car_entrants,
        counts.receptions - last.receptions,
        counts.open_days - int(last.visitors > 0),
    )


def _counts(acc: _PeriodAcc | None) -> league_rules.Counts:
    if acc is None:
        return league_rules.ZERO
    return league_rules.Counts(acc.visitors, acc.browsers, acc.entrants, acc.receptions, acc.open_days)


def _funnel_counts(f: FunnelFigures | None) -> league_rules.Counts:
    if f is None:
        return league_rules.ZERO
    return league_rules.Counts(f.visitors, f.car_browsers, f.car_entrants, f.receptions, int(f.visitors > 0))


def _store_info(r: StoreRow) -> StoreInfo:
    cars = tuple(
        StoreCar(
            c["id"],
            c["model_name"],
            tuple((float(p[0]), float(p[1])) for p in c.get("browse_zone_m", [])),
            tuple((float(p[0]), float(p[1])) for p in c.get("interior_zone_m", [])),
        )
        for c in json.loads(r.cars_json)
    )
    floor = (
        (float(r.floor_w_m), float(r.floor_h_m))
        if r.floor_w_m is not None and r.floor_h_m is not None
        else None
    )
    return StoreInfo(
        r.store_id,
        r.name,
        r.brand,
        r.region,
        r.timezone,
        floor,
        cars,
        True,
        float(r.browse_min_s),
        FloorPlan.model_validate_json(r.floor_plan_json),
    )
