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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from aggregator import health as health_math
from aggregator import histogram
from aggregator.audit import STALE_AFTER, Audit, audit_of
from aggregator.heatgrid import decode_grid
from aggregator.registry import DIMENSIONS, Dimension
from aggregator.storage import SqliteStorage
from aggregator.storage.base import Row, StorageBackend
from aggregator.timebuckets import day_span_utc, hours_of_day, parse_ts_key, zone
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
    """Relative change of each figure, `(now - then) / then`; None where there is no base."""

    visitors: float | None
    car_browsers: float | None
    car_entrants: float | None
    receptions: float | None
    browse_rate: float | None
    car_entry_rate: float | None
    reception_rate: float | None
    median_visit_s: float | None


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


@dataclass(frozen=True)
class DailyMetrics:
    day: date
    has_data: bool
    figures: FunnelFigures


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


def _figures(row: Row | None) -> FunnelFigures:
    if row is None:
        return FunnelFigures(0, 0, 0, 0, None, None, None, None)
    visitors, browsers, entrants, receptions = int(row[2]), int(row[3]), int(row[4]), int(row[5])
    return FunnelFigures(
        visitors,
        browsers,
        entrants,
        receptions,
        _ratio(browsers, visitors),
        _ratio(entrants, browsers),
        _ratio(receptions, visitors),
        None if row[8] is None else float(row[8]),
    )


def _change(now: FunnelFigures, then: FunnelFigures | None) -> FunnelChange:
    if then is None:
        return FunnelChange(None, None, None, None, None, None, None, None)
    return FunnelChange(
        change(now.visitors, then.visitors),
        change(now.car_browsers, then.car_browsers),
        change(now.car_entrants, then.car_entrants),
        change(now.receptions, then.receptions),
        change(now.browse_rate, then.browse_rate),
        change(now.car_entry_rate, then.car_entry_rate),
        change(now.reception_rate, then.reception_rate),
        change(now.median_visit_s, then.median_visit_s),
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
    hists: list[bytes] = field(default_factory=list)
    median_cache: float | None = None

    def median(self) -> float | None:
        # One day: its exact median; several: read from the summed duration histograms.
        if self.days_with_median == 0:
            return None
        if self.days_with_median == 1:
            return self.single_median
        if self.median_cache is None:
            self.median_cache = histogram.median(histogram.decode_sum(self.hists))
        return self.median_cache

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

    def health_score(self, store_id: str) -> float | None:
        return health_math.weighted_health(self.scores(store_id), self.weights)


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
        self._period_cache: dict[tuple[tuple[str, ...] | None, date, date], dict[str, _PeriodAcc]] = {}
        self._period_cache_version = -1

    @classmethod
    def open(cls, db_path: str | Path, cache_periods: bool = True) -> Self:
        """Open an existing database read-only."""
        return cls(SqliteStorage(db_path, readonly=True), cache_periods=cache_periods)

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
            infos = {str(r[0]): _store_info(r) for r in self.storage.store_rows()}
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
        for brand_id, _name, weights in self.storage.brand_rows():
            if brand_id == brand:
                loaded = json.loads(weights)
                return {d: float(loaded.get(d, 1.0)) for d in DIMENSIONS}
        return dict.fromkeys(DIMENSIONS, 1.0)

    # -- one store, one day ---------------------------------------------------------------------------

    def funnel(self, store_id: str, day: date) -> Funnel:
        """The day's funnel with day-over-day and week-over-week change."""
        rows = {
            str(r[1]): r
            for r in self.storage.daily_rows(
                [store_id], (day - timedelta(days=7)).isoformat(), day.isoformat()
            )
        }
        today = _figures(rows.get(day.isoformat()))
        prev_row = rows.get((day - timedelta(days=1)).isoformat())
        week_row = rows.get((day - timedelta(days=7)).isoformat())
        prev = _figures(prev_row) if prev_row is not None else None
        week = _figures(week_row) if week_row is not None else None
        return Funnel(store_id, day, today, prev, week, _change(today, prev), _change(today, week))

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

    def _heatmap(self, store_id: str, start: date, end: date, rows: Sequence[Row]) -> Heatmap:
        info = self._store_or_none(store_id)
        floor = info.floor_size_m if info else None
        by_cell: dict[float, list[Row]] = defaultdict(list)
        for r in rows:
            by_cell[float(r[0])].append(r)
        if not by_cell:
            cell_m = 0.25
            shape = (math.ceil(floor[1] / cell_m), math.ceil(floor[0] / cell_m)) if floor else (0, 0)
            return Heatmap(store_id, start, end, cell_m, floor, np.zeros(shape, dtype=np.float32))
        # Several cell sizes (a reconfigured node) are not mixed: show the finest one that has data.
        cell_m = min(by_cell)
        chosen = by_cell[cell_m]
        nx = max(int(r[1]) for r in chosen)
        ny = max(int(r[2]) for r in chosen)
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

    # -- periods --------------------------------------------------------------------------------------

    def daily_series(self, store_id: str, start: date, end: date) -> list[DailyMetrics]:
        """One entry per local day in [start, end], zeros where nothing was reported."""
        rows = {str(r[1]): r for r in self.storage.daily_rows([store_id], start.isoformat(), end.isoformat())}
        out = []
        d = start
        while d <= end:
            row = rows.get(d.isoformat())
            out.append(DailyMetrics(d, row is not None, _figures(row)))
            d += timedelta(days=1)
        return out

    def _period(self, store_ids: Sequence[str] | None, start: date, end: date) -> dict[str, _PeriodAcc]:
        """Per store, the period's sums and duration histograms (cached while the database is unchanged)."""
        if not self.cache_periods or (store_ids is not None and len(store_ids) <= 1):
            return self._read_period(store_ids, start, end)
        version = self.storage.data_version()
        if version != self._period_cache_version:
            self._period_cache.clear()
            self._period_cache_version = version
        key = (None if store_ids is None else tuple(store_ids), start, end)
        found = self._period_cache.get(key)
        if found is None:
            if len(self._period_cache) >= self.PERIOD_CACHE_SIZE:
                self._period_cache.pop(next(iter(self._period_cache)))
            found = self._period_cache[key] = self._read_period(store_ids, start, end)
        return found

    def _read_period(self, store_ids: Sequence[str] | None, start: date, end: date) -> dict[str, _PeriodAcc]:
        """Per store, the period's sums (summed in SQL) and its days' duration histograms."""
        a, b = start.isoformat(), end.isoformat()
        acc: dict[str, _PeriodAcc] = {}
        for r in self.storage.period_sums(store_ids, a, b):
            acc[str(r[0])] = _PeriodAcc(
                visitors=int(r[1]),
                browsers=int(r[2]),
                entrants=int(r[3]),
                receptions=int(r[4]),
                open_days=int(r[5]),
                car_zone_s=float(r[6]),
                active_hours=int(r[7]),
                days_with_median=int(r[8]),
                single_median=None if r[9] is None else float(r[9]),
            )
        if any(x.days_with_median > 1 for x in acc.values()):
            for store_id, blob in self.storage.period_visit_hists(store_ids, a, b):
                if blob and str(store_id) in acc:
                    acc[str(store_id)].hists.append(blob)
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

    def _brand_base(self, brand_stores: Sequence[StoreInfo], accs: dict[str, _PeriodAcc]) -> _BrandBase:
        """The values of one brand's stores (or one unregistered store alone) with data in the period, and
        the brand's TOP and average of each dimension."""
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
        return _BrandBase(brand, values, tops, avgs, self.brand_weights(brand))

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
        self, start: date, end: date, brand: str | None = None, region: str | None = None
    ) -> list[LeagueRow]:
        """Every store's period figures and health (scored within its own brand), best health first."""
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
            base = self._brand_base(peers, accs)
            healths.update((s.store_id, base.health_score(s.store_id)) for s in peers)
        rows = [(s, accs.get(s.store_id, _PeriodAcc()).figures(), healths.get(s.store_id)) for s in shown]
        rows.sort(key=lambda r: (r[2] is None, -(r[2] or 0.0), r[0].store_id))
        return [LeagueRow(i + 1, s, f, h) for i, (s, f, h) in enumerate(rows)]

    # -- nodes and liveness ---------------------------------------------------------------------------

    def nodes(
        self,
        store_ids: Sequence[str] | None = None,
        now: datetime | None = None,
        offline_after_s: float = 90.0,
    ) -> list[NodeHealth]:
        """Each node's liveness, last heartbeat, cameras, outbox backlog and sequence gaps.

        Online: the last status is not `offline` and something arrived within `offline_after_s`
        (heartbeats come every 30 s)."""
        now = now or datetime.now(UTC)
        out = []
        for r in self.storage.node_rows(store_ids):
            last_seen = _dt(r[4])
            hb: dict[str, Any] = json.loads(r[7]) if r[7] else {}
            online = (
                r[2] != "offline"
                and last_seen is not None
                and (now - last_seen).total_seconds() <= offline_after_s
            )
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
                    str(r[0]),
                    str(r[1]),
                    online,
                    r[2],
                    _dt(r[3]),
                    last_seen,
                    _dt(r[6]),
                    cams,
                    hb.get("outbox_depth"),
                    hb.get("oldest_unsent_age_s"),
                    hb.get("model_id"),
                    hb.get("software_version"),
                    hb.get("uptime_s"),
                    {str(k): float(v) for k, v in hb.get("calibration_error_m", {}).items()},
                    int(r[10]),
                    int(r[11]),
                    None if r[9] is None else int(r[9]),
                )
            )
        return out

    def seq_gaps(self, store_id: str, node_id: str) -> list[tuple[int, int]]:
        """Missing sequence numbers of a node as inclusive ranges (lost payloads, not yet arrived)."""
        ranges = self.storage.seq_ranges(store_id, node_id)
        return [(a[1] + 1, b[0] - 1) for a, b in itertools.pairwise(ranges)]

    def silent_stores(self, now: datetime, after: timedelta) -> list[SilentStore]:
        """Stores from which nothing arrived for longer than `after` (or ever), longest silent first."""
        last = {str(r[0]): _dt(r[1]) for r in self.storage.last_event_per_store()}
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

    def counters(self) -> dict[str, int]:
        """Stored, duplicate and quarantined payload counts (quarantined.<reason> per reason)."""
        return self.storage.counters()

    def quarantine(self, limit: int = 100) -> list[QuarantinedPayload]:
        out = []
        for r in self.storage.quarantine_rows(limit):
            received = _dt(str(r[1]))
            assert received is not None
            out.append(
                QuarantinedPayload(
                    int(r[0]), received, str(r[2]), str(r[3]), str(r[4]), str(r[5]), int(r[6]), bytes(r[7])
                )
            )
        return out

    def _timezone(self, store_id: str) -> str:
        info = self._store_or_none(store_id)
        return info.timezone if info else "UTC"

    def day_span(self, store_id: str, day: date) -> tuple[datetime, datetime]:
        """[start, end) of the store's local day in UTC."""
        return day_span_utc(day, zone(self._timezone(store_id)))


def _store_info(r: Row) -> StoreInfo:
    cars = tuple(
        StoreCar(
            c["id"],
            c["model_name"],
            tuple((float(p[0]), float(p[1])) for p in c.get("browse_zone_m", [])),
            tuple((float(p[0]), float(p[1])) for p in c.get("interior_zone_m", [])),
        )
        for c in json.loads(r[8])
    )
    floor = (float(r[5]), float(r[6])) if r[5] is not None and r[6] is not None else None
    return StoreInfo(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), floor, cars, True)
