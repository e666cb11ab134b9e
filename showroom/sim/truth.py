"""Ground truth: every count of DOMAIN.md computed from the simulated people's true positions.

The truth is measured, not scripted: a visit starts where a visitor's true path crosses a door line
inward (within the line's ends) and ends at the next outward crossing; a browse is a continuous stay of
at least `browse_min_s` in a car's browse zone; a car entry is a stay in a car's interior entered through
one of its door areas and lasting at least `car_entry_min_s`; a reception is a continuous spell of at
least `reception_min_s` within `reception_radius_m` of a staff member; heat is visitor person-seconds per
floor cell. Staff never count. Positions are sampled every `dt_s` (default 0.1 s), so durations are exact
to that step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from edge.config import Thresholds
from edge.events import (
    CarEntry,
    Envelope,
    EventStamper,
    Heat,
    Reception,
    VisitEnded,
    VisitStarted,
    ZoneDwell,
    floor_minute,
)
from edge.sim.behaviour import Person
from edge.sim.simulation import Simulation
from edge.sim.world import SimDoor, Vec, World
from vision_models.arrays import BoolArray


@dataclass(frozen=True)
class Interval:
    """`[start_s, end_s)` in seconds since the simulation's start, on a zone or car."""

    place: str
    start_s: float
    end_s: float

    @property
    def seconds(self) -> float:
        return self.end_s - self.start_s


@dataclass
class VisitTruth:
    """One visitor's visit as DOMAIN.md defines it."""

    pid: int
    door_in: str
    start_s: float
    door_out: str | None
    end_s: float
    dwells: list[Interval] = field(default_factory=list)
    """Qualifying browse dwells (>= browse_min_s), one per continuous stay in a browse zone."""
    entries: list[Interval] = field(default_factory=list)
    reception: Interval | None = None

    @property
    def browsed(self) -> bool:
        return bool(self.dwells)

    @property
    def entered_car(self) -> bool:
        return bool(self.entries)

    @property
    def received(self) -> bool:
        return self.reception is not None


@dataclass(frozen=True)
class CarTruth:
    """DOMAIN.md's dwell per car."""

    browsers: int
    dwell_total_s: float
    dwell_median_s: float
    entries: int


@dataclass
class GroundTruth:
    """The truth of one simulated period.

    Attributes:
        visits: visits started in the period, in start order.
        heat_s: {(minute_index, ix, iy): person_seconds}, minute_index counted from the start's minute.
        occupancy_max: {minute_index: most visitors on the floor at once}.
    """

    start_utc: datetime
    dt_s: float
    cell_m: float
    visits: list[VisitTruth]
    heat_s: dict[tuple[int, int, int], float]
    occupancy_max: dict[int, int]
    car_ids: tuple[str, ...]

    @property
    def visitors(self) -> int:
        return len(self.visits)

    @property
    def car_browsers(self) -> int:
        return sum(v.browsed for v in self.visits)

    @property
    def car_entrants(self) -> int:
        return sum(v.entered_car for v in self.visits)

    @property
    def received(self) -> int:
        return sum(v.received for v in self.visits)

    @property
    def heat_person_s(self) -> float:
        return float(sum(self.heat_s.values()))

    def per_car(self) -> dict[str, CarTruth]:
        out = {}
        for car in self.car_ids:
            dwells = [d.seconds for v in self.visits for d in v.dwells if d.place == car]
            browsers = sum(any(d.place == car for d in v.dwells) for v in self.visits)
            entries = sum(1 for v in self.visits for e in v.entries if e.place == car)
            median = float(np.median(dwells)) if dwells else 0.0
            out[car] = CarTruth(browsers, float(sum(dwells)), median, entries)
        return out

    def heat_grid(self, shape_xy: tuple[int, int]) -> Vec:
        """Person-seconds summed over the period, array (ny, nx) of `cell_m` cells."""
        grid = np.zeros((shape_xy[1], shape_xy[0]))
        for (_, ix, iy), value in self.heat_s.items():
            if 0 <= ix < shape_xy[0] and 0 <= iy < shape_xy[1]:
                grid[iy, ix] += value
        return grid

    def events(self, stamper: EventStamper) -> list[Envelope]:
        """The contract events a perfect node would have sent, in time order (visit ids from `stamper`)."""
        timed: list[tuple[datetime, int, type[Envelope], dict[str, Any]]] = []
        at = self._at
        for n, visit in enumerate(self.visits):
            vid = stamper.ids.visitor_id()
            timed.append((at(visit.start_s), n, VisitStarted, {"visitor_id": vid, "door_id": visit.door_in}))
            for d in visit.dwells:
                fields = {"visitor_id": vid, "zone_id": d.place, "entered_at": at(d.start_s)}
                timed.append(
                    (at(d.end_s), n, ZoneDwell, fields | {"exited_at": at(d.end_s), "dwell_s": d.seconds})
                )
            for e in visit.entries:
                fields = {"visitor_id": vid, "car_id": e.place, "entered_at": at(e.start_s)}
                timed.append(
                    (at(e.end_s), n, CarEntry, fields | {"exited_at": at(e.end_s), "inside_s": e.seconds})
                )
            if visit.reception is not None:
                r = visit.reception
                ts = at(r.start_s + 0.0) + timedelta(seconds=r.seconds)
                fields = {"visitor_id": vid, "started_at": at(r.start_s), "duration_s": r.seconds}
                timed.append((ts, n, Reception, fields))
            ended: dict[str, Any] = {
                "visitor_id": vid,
                "door_id": visit.door_out,
                "started_at": at(visit.start_s),
                "duration_s": round(visit.end_s - visit.start_s, 3),
                "browsed": visit.browsed,
                "entered_car": visit.entered_car,
                "received": visit.received,
                "end_reason": "door" if visit.door_out else "lost",
            }
            timed.append((at(visit.end_s), n, VisitEnded, ended))
        first_minute = floor_minute(self.start_utc)
        cells: dict[int, list[tuple[int, int, float]]] = {}
        for (minute, ix, iy), value in self.heat_s.items():
            cells.setdefault(minute, []).append((ix, iy, round(value, 3)))
        for minute, row in cells.items():
            start = first_minute + timedelta(minutes=minute)
            fields = {
                "minute": start,
                "cell_m": self.cell_m,
                "cells": sorted(c for c in row if c[2] > 0),
                "occupancy_max": self.occupancy_max.get(minute, 0),
            }
            timed.append((start + timedelta(minutes=1), -1, Heat, fields))
        timed.sort(key=lambda item: (item[0], item[1]))
        return [stamper.stamp(cls, ts, **fields) for ts, _, cls, fields in timed]

    def _at(self, t_s: float) -> datetime:
        return self.start_utc + timedelta(seconds=t_s)


def compute_truth(sim: Simulation, thresholds: Thresholds | None = None, dt_s: float = 0.1) -> GroundTruth:
    """The ground truth of everything scripted so far (call `sim.finish()` first for a whole scenario)."""
    th = thresholds or sim.config.thresholds
    return truth_of(sim.world, sim.people(), sim.start_utc, th, dt_s)


def truth_of(
    world: World, people: list[Person], start_utc: datetime, th: Thresholds, dt_s: float = 0.1
) -> GroundTruth:
    """The ground truth of `people` (visitors and staff) on `world`; time 0 is `start_utc`."""
    staff = [p for p in people if p.role == "staff"]
    visits: list[VisitTruth] = []
    heat_keys: list[npt.NDArray[np.int64]] = []
    heat_k: list[npt.NDArray[np.int64]] = []
    minute0 = floor_minute(start_utc)
    offset_s = (start_utc - minute0).total_seconds()
    for person in people:
        if person.role != "visitor":
            continue
        k = np.arange(
            int(np.ceil(person.start_s / dt_s)), int(np.floor(person.end_s / dt_s)) + 1, dtype=np.int64
        )
        if len(k) < 2:
            continue
        t = k * dt_s
        xy = person.positions(t)
        visit = _visit_of(person, world, t, xy)
        if visit is None:
            continue
        in_visit = (t >= visit.start_s) & (t < visit.end_s)
        visit.dwells = _dwells(world, t, xy, in_visit, dt_s, th.browse_min_s)
        visit.entries = _entries(world, t, xy, in_visit, dt_s, th.car_entry_min_s)
        visit.reception = _reception(staff, t, xy, in_visit, dt_s, th)
        visits.append(visit)
        on_floor = in_visit & shapely.contains_xy(world.floor, xy[:, 0], xy[:, 1])
        cell = np.floor(xy[on_floor] / th.heat_cell_m).astype(np.int64)
        minute = np.floor((t[on_floor] + offset_s) / 60.0).astype(np.int64)
        heat_keys.append(np.stack([minute, cell[:, 0], cell[:, 1]], axis=1))
        heat_k.append(k[on_floor])
    heat_s: dict[tuple[int, int, int], float] = {}
    occupancy: dict[int, int] = {}
    if heat_keys:
        keys = np.concatenate(heat_keys)
        uniq, counts = np.unique(keys, axis=0, return_counts=True)
        heat_s = {
            (int(m), int(ix), int(iy)): float(c) * dt_s for (m, ix, iy), c in zip(uniq, counts, strict=True)
        }
        ks = np.concatenate(heat_k)
        frames, per_frame = np.unique(ks, return_counts=True)
        minutes = np.floor((frames * dt_s + offset_s) / 60.0).astype(np.int64)
        for m, n in zip(minutes, per_frame, strict=True):
            occupancy[int(m)] = max(occupancy.get(int(m), 0), int(n))
    visits.sort(key=lambda v: v.start_s)
    return GroundTruth(
        start_utc=start_utc,
        dt_s=dt_s,
        cell_m=th.heat_cell_m,
        visits=visits,
        heat_s=heat_s,
        occupancy_max=occupancy,
        car_ids=tuple(c.id for c in world.cars),
    )


def _crossings(door: SimDoor, t: Vec, xy: Vec) -> list[tuple[float, int]]:
    """(time, +1 inward / -1 outward) of every crossing of the door line within its ends."""
    side = door.side_m(xy)
    inside = side > 0
    steps = np.flatnonzero(inside[1:] != inside[:-1])
    out = []
    for i in steps:
        frac = side[i] / (side[i] - side[i + 1])
        hit = xy[i] + (xy[i + 1] - xy[i]) * frac
        pos = float(door.along_m(hit[None])[0])
        if 0.0 <= pos <= door.width_m:
            out.append((float(t[i] + (t[i + 1] - t[i]) * frac), 1 if inside[i + 1] else -1))
    return out


def _visit_of(person: Person, world: World, t: Vec, xy: Vec) -> VisitTruth | None:
    crossings = sorted((ts, d, door.id) for door in world.doors for ts, d in _crossings(door, t, xy))
    start = next(((ts, door) for ts, d, door in crossings if d > 0), None)
    if start is None:
        return None
    end = next(((ts, door) for ts, d, door in crossings if d < 0 and ts > start[0]), None)
    if end is None:
        return VisitTruth(person.pid, start[1], start[0], None, float(t[-1]))
    return VisitTruth(person.pid, start[1], start[0], end[1], end[0])


def _runs(mask: BoolArray) -> list[tuple[int, int]]:
    """[(first, last_exclusive)] of the True runs in `mask`."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _dwells(
    world: World,
    t: Vec,
    xy: Vec,
    in_visit: BoolArray,
    dt_s: float,
    min_s: float,
) -> list[Interval]:
    out = []
    for car in world.cars:
        inside = shapely.contains_xy(car.browse, xy[:, 0], xy[:, 1]) & in_visit
        for a, b in _runs(inside):
            if (b - a) * dt_s >= min_s - 1e-9:
                out.append(Interval(car.id, float(t[a]), float(t[a]) + (b - a) * dt_s))
    return sorted(out, key=lambda i: i.start_s)


def _entries(
    world: World,
    t: Vec,
    xy: Vec,
    in_visit: BoolArray,
    dt_s: float,
    min_s: float,
) -> list[Interval]:
    out = []
    for car in world.cars:
        inside = shapely.contains_xy(car.interior, xy[:, 0], xy[:, 1]) & in_visit
        if not inside.any():
            continue
        in_door = np.zeros(len(xy), dtype=bool)
        for area in car.door_areas:
            in_door |= shapely.contains_xy(area, xy[:, 0], xy[:, 1])
        for a, b in _runs(inside):
            through_door = a > 0 and bool(in_door[a - 1] or in_door[a])
            if through_door and (b - a) * dt_s >= min_s - 1e-9:
                out.append(Interval(car.id, float(t[a]), float(t[a]) + (b - a) * dt_s))
    return sorted(out, key=lambda i: i.start_s)


def _reception(
    staff: list[Person],
    t: Vec,
    xy: Vec,
    in_visit: BoolArray,
    dt_s: float,
    th: Thresholds,
) -> Interval | None:
    if not staff:
        return None
    nearest = np.full(len(t), np.inf)
    for member in staff:
        present = (t >= member.start_s) & (t <= member.end_s)
        if not present.any():
            continue
        d = np.linalg.norm(member.positions(t) - xy, axis=1)
        nearest = np.where(present, np.minimum(nearest, d), nearest)
    near = (nearest <= th.reception_radius_m) & in_visit
    for a, b in _runs(near):
        if (b - a) * dt_s >= th.reception_min_s - 1e-9:
            return Interval("staff", float(t[a]), float(t[a]) + (b - a) * dt_s)
    return None


__all__ = ["CarTruth", "GroundTruth", "Interval", "VisitTruth", "compute_truth", "truth_of"]
