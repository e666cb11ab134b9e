"""Floor zones and the per-visit state machines that use them: browse dwell and car entries.

A car entry (DOMAIN.md): a visitor track that enters the car's interior through one of its door areas and
either stays inside at least `car_entry_min_s`, or disappears there and reappears from it. A visitor whose
track ends inside a car's interior or at one of its door areas is parked "in" that car; reappearing from
the car after vanishing into it through a door area is a car entry (`reappeared_from_car`); reappearing
anywhere else is not. Walking past the car, or bending into it, is not an entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import shapely
from shapely.geometry import LineString, Polygon

from vision_models.arrays import XY

ZONE_EXIT_GRACE_S = 1.5
"""Leaving a browse zone for less than this (jitter at its edge) does not end the stay."""
VANISH_MIN_S = 1.0
"""Unseen this long inside a car's footprint counts as having vanished into the car."""


class Zone:
    """A floor polygon with fast point tests (a few per track and frame, so plain Python beats a library)."""

    def __init__(self, points: list[tuple[float, float]]) -> None:
        self.polygon = Polygon(points)
        shapely.prepare(self.polygon)
        self._points = [(float(x), float(y)) for x, y in points]
        self._bounds = self.polygon.bounds

    def contains(self, xy: XY) -> bool:
        """Point in polygon (even-odd ray casting); points exactly on an edge may fall either way."""
        x, y = xy
        x0, y0, x1, y1 = self._bounds
        if x < x0 or x > x1 or y < y0 or y > y1:
            return False
        inside = False
        pts = self._points
        px, py = pts[-1]
        for qx, qy in pts:
            if (qy > y) != (py > y) and x < (px - qx) * (y - qy) / (py - qy) + qx:
                inside = not inside
            px, py = qx, qy
        return inside

    def crossed_by(self, a: XY, b: XY) -> bool:
        return bool(self.polygon.intersects(LineString([a, b]))) if a != b else self.contains(a)


@dataclass
class ZoneStay:
    """An open stay in a browse zone."""

    entered_at: datetime
    last_in: datetime


def step_stay(
    stay: ZoneStay | None, inside: bool, ts_utc: datetime
) -> tuple[ZoneStay | None, ZoneStay | None]:
    """Advance one browse-zone stay; returns (open stay, stay that just ended)."""
    if inside:
        if stay is None:
            return ZoneStay(ts_utc, ts_utc), None
        stay.last_in = ts_utc
        return stay, None
    if stay is not None and (ts_utc - stay.last_in).total_seconds() > ZONE_EXIT_GRACE_S:
        return None, stay
    return stay, None


@dataclass
class CarVisit:
    """One visitor's state beside one car.

    `phase` is `outside`, `inside` (got in through a door area) or `passing` (on the footprint without
    having come through a door area: noise or walking over it, never an entry).
    """

    phase: str = "outside"
    entered_at: datetime | None = None
    last_inside: datetime | None = None
    unseen_since: datetime | None = None
    vanished: bool = False
    prev_xy: XY | None = None
    prev_in_door: bool = False


@dataclass
class CarZones:
    car_id: str
    browse: Zone
    interior: Zone
    doors: list[Zone] = field(default_factory=list)

    def in_door_area(self, xy: XY) -> bool:
        return any(d.contains(xy) for d in self.doors)

    def relink_areas(self) -> list[Polygon]:
        """The interior and door areas: where a person getting out of the car shows up near."""
        return [z.polygon for z in [self.interior, *self.doors]]


def car_at(cars: Iterable[CarZones], xy: XY) -> str | None:
    """The car whose interior or a door area holds `xy` (the first in configuration order), if any."""
    for car in cars:
        if car.interior.contains(xy) or car.in_door_area(xy):
            return car.car_id
    return None


@dataclass(frozen=True)
class CarEntryRecord:
    car_id: str
    entered_at: datetime
    exited_at: datetime


def step_car(
    car: CarZones, state: CarVisit, xy: XY, observed: bool, ts_utc: datetime, min_inside_s: float
) -> CarEntryRecord | None:
    """Advance one visitor's state beside one car; returns a completed car entry, if any.

    An entry: the track comes onto the car's footprint from one of its door areas, then either stays there
    at least `min_inside_s`, or vanishes there (unseen at least `VANISH_MIN_S`) and reappears from it.
    Walking past, or bending in with the feet in the door area, is not an entry.
    """
    if not observed:
        if state.phase == "inside":
            state.unseen_since = state.unseen_since or ts_utc
            if state.last_inside is not None and (ts_utc - state.last_inside).total_seconds() >= VANISH_MIN_S:
                state.vanished = True
        return None
    state.unseen_since = None
    in_interior = car.interior.contains(xy)
    in_door = car.in_door_area(xy)
    record: CarEntryRecord | None = None
    if in_interior:
        if state.phase == "outside":
            came_through_door = state.prev_in_door or (
                state.prev_xy is not None and any(d.crossed_by(state.prev_xy, xy) for d in car.doors)
            )
            if came_through_door:
                state.phase, state.entered_at, state.vanished = "inside", ts_utc, False
            else:
                state.phase = "passing"
        state.last_inside = ts_utc
    elif state.phase == "inside" and state.entered_at is not None:
        inside_s = (ts_utc - state.entered_at).total_seconds()
        if inside_s >= min_inside_s or state.vanished:
            record = CarEntryRecord(car.car_id, state.entered_at, ts_utc)
        state.phase, state.entered_at, state.vanished = "outside", None, False
    elif state.phase == "passing":
        state.phase = "outside"
    state.prev_xy = xy
    state.prev_in_door = in_door
    return record


def close_car(state: CarVisit, ts_utc: datetime, car_id: str, min_inside_s: float) -> CarEntryRecord | None:
    """At the end of a visit: an entry still in progress that already qualifies."""
    if state.phase != "inside" or state.entered_at is None:
        return None
    end = state.last_inside or ts_utc
    if (end - state.entered_at).total_seconds() >= min_inside_s:
        return CarEntryRecord(car_id, state.entered_at, end)
    return None


def reappeared_from_car(state: CarVisit, vanished_at: datetime) -> None:
    """The visitor vanished into the car of `state` at `vanished_at` and a track starts there again: they
    sat in it. The entry runs from when they vanished; it is sent once they are seen outside its interior."""
    if state.phase != "inside":
        if not state.prev_in_door:
            return  # vanished on the footprint without coming through a door area: not an entry
        state.phase, state.entered_at = "inside", vanished_at
    state.last_inside = vanished_at
    state.vanished = True
