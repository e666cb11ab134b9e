"""Synthetic data: contract events for store days, and fast rollup fills for load tests.

`visit_events` builds the events one visit produces (as an edge node would send them), so tests and
benches drive the real ingest path. `fill_rollups` writes daily/hourly/per-car/heat rollups directly for
many stores and days (for query-latency benches of the dashboard and the API: 500 stores x 1 year in
about a minute), through the storage backend's bulk writer.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from aggregator import histogram
from aggregator.heatgrid import encode_grid
from aggregator.registry import CarEntry as RegistryCar
from aggregator.storage.base import StorageBackend
from aggregator.storage.records import (
    CarDayRecord,
    DailyRow,
    HeatDayRecord,
    HourlyRecord,
    NodeSeenRecord,
    StoreRow,
)
from aggregator.timebuckets import day_span_utc, hours_of_day, zone
from edge.events import (
    CarEntry,
    Envelope,
    EventStamper,
    Heat,
    IdSource,
    Reception,
    VisitEnded,
    VisitStarted,
    ZoneDwell,
    format_ts,
)


@dataclass(frozen=True)
class VisitPlan:
    """What one visitor does: when they come, how long they stay, which car they look at / get into."""

    start_utc: datetime
    duration_s: float
    browse_car: str | None = None
    browse_s: float = 0.0
    enter_car: str | None = None
    received: bool = False


def visit_events(stamper: EventStamper, plan: VisitPlan, door_id: str = "main") -> list[Envelope]:
    """The events of one visit in the order an edge node sends them (start, dwell, entry, reception, end)."""
    vid = stamper.ids.visitor_id()
    t0 = plan.start_utc
    end = t0 + timedelta(seconds=plan.duration_s)
    out: list[Envelope] = [stamper.stamp(VisitStarted, t0, visitor_id=vid, door_id=door_id)]
    if plan.browse_car is not None:
        a = t0 + timedelta(seconds=min(5.0, plan.duration_s / 4))
        b = a + timedelta(seconds=plan.browse_s)
        out.append(
            stamper.stamp(
                ZoneDwell,
                b,
                visitor_id=vid,
                zone_id=plan.browse_car,
                entered_at=a,
                exited_at=b,
                dwell_s=plan.browse_s,
            )
        )
        if plan.enter_car is not None:
            c = a + timedelta(seconds=1)
            d = c + timedelta(seconds=max(3.0, plan.browse_s / 3))
            inside = (d - c).total_seconds()
            out.append(
                stamper.stamp(
                    CarEntry,
                    d,
                    visitor_id=vid,
                    car_id=plan.enter_car,
                    entered_at=c,
                    exited_at=d,
                    inside_s=inside,
                )
            )
    if plan.received:
        r = t0 + timedelta(seconds=min(plan.duration_s, 40.0))
        out.append(
            stamper.stamp(Reception, r, visitor_id=vid, started_at=t0, duration_s=min(plan.duration_s, 40.0))
        )
    out.append(
        stamper.stamp(
            VisitEnded,
            end,
            visitor_id=vid,
            door_id=door_id,
            started_at=t0,
            duration_s=(end - t0).total_seconds(),
            browsed=plan.browse_car is not None and plan.browse_s >= 10.0,
            entered_car=plan.enter_car is not None,
            received=plan.received,
        )
    )
    return out


def funnel_day_plans(
    day_start_utc: datetime,
    visitors: int,
    browsers: int,
    entrants: int,
    receptions: int = 0,
    cars: Sequence[str] = ("car-01",),
    seed: int = 0,
    open_hours: tuple[int, int] = (1, 11),
) -> list[VisitPlan]:
    """Plans for a store day with exactly these funnel counts (browsers <= visitors, entrants <= browsers).

    Visits start between `open_hours` hours after `day_start_utc` (local midnight) and last 2-30 minutes.
    """
    if not entrants <= browsers <= visitors or receptions > visitors:
        raise ValueError(f"impossible funnel {visitors}/{browsers}/{entrants}/{receptions}")
    rng = random.Random(seed)
    plans = []
    for i in range(visitors):
        start = day_start_utc + timedelta(seconds=rng.uniform(open_hours[0] * 3600, open_hours[1] * 3600))
        duration = rng.uniform(120, 1800)
        car = cars[i % len(cars)] if i < browsers else None
        plans.append(
            VisitPlan(
                start,
                duration,
                browse_car=car,
                browse_s=rng.uniform(12, 90) if car else 0.0,
                enter_car=car if i < entrants else None,
                received=i < receptions,
            )
        )
    return plans


def heat_event(
    stamper: EventStamper, minute_utc: datetime, cells: list[tuple[int, int, float]], occ: int
) -> Heat:
    return stamper.stamp(
        Heat,
        minute_utc + timedelta(seconds=60),
        minute=minute_utc,
        cell_m=0.25,
        cells=cells,
        occupancy_max=occ,
    )


# ---------------------------------------------------------------------------------------------------
# Bulk rollups for load tests
# ---------------------------------------------------------------------------------------------------


def synthetic_registry_rows(n_stores: int, brands: int = 5, cars_per_store: int = 6) -> list[StoreRow]:
    """Store rows for `StorageBackend.write_store`: brands b0.., regions east/west/north/south."""
    regions = ("east", "west", "north", "south")
    zones = ("Asia/Shanghai", "Europe/Berlin", "America/New_York")
    rows: list[StoreRow] = []
    for i in range(n_stores):
        cars = [
            RegistryCar(
                id=f"car-{c:02d}",
                model_name=f"Model {c}",
                browse_zone_m=[
                    (2.0 + 5 * c, 3.0),
                    (6.0 + 5 * c, 3.0),
                    (6.0 + 5 * c, 9.0),
                    (2.0 + 5 * c, 9.0),
                ],
                interior_zone_m=[
                    (3.0 + 5 * c, 5.0),
                    (5.0 + 5 * c, 5.0),
                    (5.0 + 5 * c, 7.0),
                    (3.0 + 5 * c, 7.0),
                ],
            ).model_dump(mode="json")
            for c in range(cars_per_store)
        ]
        rows.append(
            StoreRow(
                f"s{i:04d}",
                f"Store {i}",
                f"b{i % brands}",
                regions[i % len(regions)],
                zones[i % len(zones)],
                36.0,
                24.0,
                10.0,
                json.dumps(cars),
                "{}",  # no floor plan
            )
        )
    return rows


def _days(start: date, n_days: int) -> Iterator[date]:
    for i in range(n_days):
        yield start + timedelta(days=i)


STORES_PER_WRITE = 20
"""Stores written per transaction by `fill_rollups`: week parts lead with the day, so writing many stores
at once writes each page of them once instead of once per store."""


def fill_rollups(
    storage: StorageBackend,
    n_stores: int = 500,
    start: date = date(2025, 1, 1),
    n_days: int = 365,
    seed: int = 7,
    heat_days: int = 35,
) -> int:
    """Write registry, daily, hourly, per-car and daily heat rollups for `n_stores` x `n_days`.

    Figures are plausible (tens of visitors a day, a weekly rhythm, per-store strength) but random; heat
    grids are written for the last `heat_days` days only (they dominate the file size). Vectorised per
    store, so 500 stores x 365 days take a few minutes. Returns the number of store-days written.
    """
    rng = np.random.default_rng(seed)
    stores = synthetic_registry_rows(n_stores)
    with storage.transaction():
        for b in range(5):
            storage.write_brand(f"b{b}", f"Brand {b}", {})
        for row in stores:
            storage.write_store(row)
    days = [start + timedelta(days=i) for i in range(n_days)]
    day_keys = [d.isoformat() for d in days]
    weekend = np.array([d.weekday() >= 5 for d in days])
    # Sparse, aisle-like heat grids (36 x 24 m at 0.25 m), a few variants reused across days.
    heat_variants = []
    for _ in range(8):
        mask = rng.random((96, 144)) < 0.3
        grid = np.where(mask, np.round(rng.gamma(1.0, 20.0, size=(96, 144)), 1), 0).astype(np.float32)
        heat_variants.append((float(grid.sum()), encode_grid(grid)))
    dwell_hists = [
        histogram.encode(histogram.histogram((rng.gamma(2.0, 20.0, size=30) + 10).tolist()))
        for _ in range(16)
    ]
    p_duration = np.bincount(histogram.bin_of(rng.gamma(2.0, 300.0, size=20_000)), minlength=histogram.N_BINS)
    p_duration = p_duration / p_duration.sum()
    last_seen = format_ts(datetime.combine(start + timedelta(days=n_days), datetime.min.time(), UTC))
    daily: list[DailyRow] = []
    hourly: list[HourlyRecord] = []
    cars: list[CarDayRecord] = []
    heats: list[HeatDayRecord] = []
    nodes: list[NodeSeenRecord] = []
    for count, row in enumerate(stores, start=1):
        store_id = row.store_id
        tz = zone(row.timezone)
        strength = rng.uniform(0.5, 1.5)
        visitors = rng.poisson(40 * strength * np.where(weekend, 1.6, 1.0))
        browsers = rng.binomial(visitors, 0.7)
        entrants = rng.binomial(browsers, 0.25)
        receptions = rng.binomial(visitors, 0.6)
        hists = np.stack([rng.multinomial(int(v), p_duration) for v in visitors])
        per_hour = np.stack([rng.multinomial(int(v), [1 / 11] * 11) for v in visitors])
        per_car = np.stack([rng.multinomial(int(b), [1 / 6] * 6) for b in browsers])
        zone_s = browsers * rng.uniform(30, 90, size=n_days)
        for i, key in enumerate(day_keys):
            v = int(visitors[i])
            med = histogram.median(hists[i])
            daily.append(
                DailyRow(
                    store_id,
                    key,
                    v,
                    int(browsers[i]),
                    int(entrants[i]),
                    int(receptions[i]),
                    v,
                    float(v * 600.0),
                    med,
                    histogram.encode(hists[i].astype(np.uint32)),
                    float(zone_s[i]),
                    int((per_hour[i] > 0).sum()),
                )
            )
            for h, n in zip(hours_of_day(days[i], tz)[10:21], per_hour[i], strict=True):
                hourly.append(HourlyRecord(store_id, h.key, key, int(n), int(n) // 2))
            for c in range(6):
                nb = int(per_car[i, c])
                cars.append(
                    CarDayRecord(
                        store_id,
                        key,
                        f"car-{c:02d}",
                        nb,
                        float(nb * 35.0),
                        30.0 if nb else None,
                        dwell_hists[(i + c) % 16],
                        nb // 4,
                    )
                )
            if i >= n_days - heat_days:
                total, blob = heat_variants[(i + len(store_id)) % 8]
                heats.append(HeatDayRecord(store_id, key, 0.25, 144, 96, total, blob))
        nodes.append(NodeSeenRecord(store_id, "node-a", last_seen))
        if count % STORES_PER_WRITE == 0 or count == len(stores):
            with storage.transaction():
                storage.bulk_write_rollups(
                    daily=daily, hourly=hourly, car_daily=cars, heat_day=heats, nodes=nodes
                )
            for rows in (daily, hourly, cars, heats, nodes):
                rows.clear()
    return n_stores * n_days


def stamper_for(store_id: str, node_id: str = "node-a", seed: int = 1) -> EventStamper:
    return EventStamper(store_id, node_id, IdSource(seed))


def local_midnight_utc(day: date, tz_name: str) -> datetime:
    return day_span_utc(day, zone(tz_name))[0]
