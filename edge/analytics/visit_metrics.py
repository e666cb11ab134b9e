"""Per-visit metrics: browse dwell per car, car entries and reception, sent as contract events.

Each runs per visit, on whichever track the visit is on at the time: a track break neither ends a visit nor
starts a new one, so browse dwell runs on across it. Events of a visit not yet confirmed are not sent
(a person who steps in and straight back out is not a visitor). A visit's open stays, car entries in
progress and reception streak are closed when it ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from edge.analytics.reception import ReceptionStreak, near_staff, step_reception
from edge.analytics.zones import CarVisit, CarZones, ZoneStay, close_car, step_car, step_stay
from edge.config import Thresholds
from edge.events import CarEntry, Envelope, EventStamper, Reception, ZoneDwell
from edge.tracking.base import TrackState
from vision_models.arrays import XY

if TYPE_CHECKING:
    from edge.analytics.visits import Visit


class VisitMetrics:
    """Advances and closes one visit's dwell, car-entry and reception state, and stamps their events."""

    def __init__(self, thresholds: Thresholds, cars: list[CarZones], stamper: EventStamper) -> None:
        self.thresholds = thresholds
        self.cars = cars
        self.stamper = stamper

    def step(
        self, ts_utc: datetime, visit: Visit, track: TrackState, staff_xy: Sequence[XY]
    ) -> list[Envelope]:
        """One step of the visit on its current track; `staff_xy`: where staff were observed now."""
        out: list[Envelope] = []
        xy = track.xy_m
        if track.observed:
            visit.last_seen_utc, visit.last_xy = ts_utc, xy
        min_inside = self.thresholds.car_entry_min_s
        for car in self.cars:
            stay, ended = step_stay(visit.stays.get(car.car_id), car.browse.contains(xy), ts_utc)
            if stay is None:
                visit.stays.pop(car.car_id, None)
            else:
                visit.stays[car.car_id] = stay
            if ended is not None:
                out += self._dwell_event(visit, car.car_id, ended)
            state = visit.cars.setdefault(car.car_id, CarVisit())
            record = step_car(car, state, xy, track.observed, ts_utc, min_inside)
            if record is not None:
                out += self._car_event(visit, record.car_id, record.entered_at, record.exited_at)
        if track.observed:
            near = near_staff(xy, staff_xy, self.thresholds.reception_radius_m)
            visit.reception, done = step_reception(visit.reception, near, ts_utc)
            if done is not None:
                out += self._reception_event(visit, done)
        return out

    def close(self, visit: Visit, ts_utc: datetime) -> list[Envelope]:
        """The visit ends at `ts_utc`: send what its open stays, entries and streak already qualify for."""
        out: list[Envelope] = []
        for car_id, stay in sorted(visit.stays.items()):
            out += self._dwell_event(visit, car_id, stay)
        visit.stays.clear()
        for car_id, state in sorted(visit.cars.items()):
            record = close_car(state, ts_utc, car_id, self.thresholds.car_entry_min_s)
            if record is not None:
                out += self._car_event(visit, car_id, record.entered_at, record.exited_at)
        visit.cars.clear()
        if visit.reception is not None:
            out += self._reception_event(visit, visit.reception)
            visit.reception = None
        return out

    def _dwell_event(self, visit: Visit, car_id: str, stay: ZoneStay) -> list[Envelope]:
        dwell_s = (stay.last_in - stay.entered_at).total_seconds()
        if dwell_s < self.thresholds.browse_min_s or not visit.confirmed:
            return []
        visit.browsed = True
        return [
            self.stamper.stamp(
                ZoneDwell,
                stay.last_in,
                visitor_id=visit.visitor_id,
                zone_id=car_id,
                entered_at=stay.entered_at,
                exited_at=stay.last_in,
                dwell_s=round(dwell_s, 3),
            )
        ]

    def _car_event(
        self, visit: Visit, car_id: str, entered_at: datetime, exited_at: datetime
    ) -> list[Envelope]:
        if not visit.confirmed:
            return []
        visit.entered_car = True
        return [
            self.stamper.stamp(
                CarEntry,
                exited_at,
                visitor_id=visit.visitor_id,
                car_id=car_id,
                entered_at=entered_at,
                exited_at=exited_at,
                inside_s=round((exited_at - entered_at).total_seconds(), 3),
            )
        ]

    def _reception_event(self, visit: Visit, streak: ReceptionStreak) -> list[Envelope]:
        duration_s = (streak.last_near - streak.started_at).total_seconds()
        if duration_s < self.thresholds.reception_min_s or not visit.confirmed:
            return []
        visit.received = True
        return [
            self.stamper.stamp(
                Reception,
                streak.last_near,
                visitor_id=visit.visitor_id,
                started_at=streak.started_at,
                duration_s=round(duration_s, 3),
            )
        ]
