"""Track continuity: a new or ended track is checked against the people the analytics have lost.

The tracker's tracks break (a person hidden too long, sitting in a car, crossing a door line behind
someone); `edge.tracking.relink` decides which track is a lost person tracked again, and this module
carries the outcome to the parts that keep per-person state: the visit (`visits`), the staff flag
(`staff_flags`) and the door lines' committed sides (`door`).
"""

from __future__ import annotations

from collections.abc import Sequence

from edge.analytics.door import DoorCounter, outside_doors
from edge.analytics.staff_flags import StaffFlags
from edge.analytics.track_records import TrackRecords
from edge.analytics.visits import Visits
from edge.analytics.zones import CarZones
from edge.tracking.base import TrackState
from edge.tracking.relink import Relinker, car_left_from, door_successor


class TrackContinuity:
    """Hands lost people's visits, staff flags and door-line sides on to the tracks that continue them."""

    def __init__(
        self,
        doors: Sequence[DoorCounter],
        cars: Sequence[CarZones],
        records: TrackRecords,
        visits: Visits,
        staff: StaffFlags,
        relinker: Relinker,
        outside: Sequence[DoorCounter] | None = None,
    ) -> None:
        self.doors = doors
        """The doors this box counts (their line sides go on with a person tracked again)."""
        self.outside = doors if outside is None else outside
        """Every door of the store: past any of them is the street (a box sees past a neighbour's door)."""
        self.records = records
        self.visits = visits
        self.staff = staff
        self.relinker = relinker
        self._car_areas = [(car.car_id, car.relink_areas()) for car in cars]

    def track_started(self, track: TrackState) -> None:
        """A track the analytics have not seen: it may be a lost visitor or staff member coming back (a
        track starting beyond a door line is someone coming in, judged at the line)."""
        if outside_doors(self.outside, track.first_xy_m):
            return
        car = car_left_from(track.first_xy_m, self._car_areas)
        born = self.records[track.track_id].first_seen_utc
        found = self.relinker.returning(track, born, car, self.visits.lost(), self.staff.lost)
        if found is None:
            return
        if found.kind == "staff":
            self.staff.take_over(found, track.track_id)
        else:
            self.visits.resume(found, track.track_id)

    def track_ended(self, track_id: int, alive: list[TrackState]) -> None:
        """The tracker gave up on `track_id` (it never reuses an id): forget it, and hand its door-line
        side, its visit or its staff flag on to the track that continues it, if any."""
        record = self.records.end(track_id)
        successor = None
        if record is not None and record.last is not None:
            candidates = self.records.candidates(alive, lambda _, r: not r.continues_another)
            successor = door_successor(record.last, candidates)
            if successor is not None:
                self.records[successor].continues_another = True
        for door in self.doors:
            if successor is not None:
                door.hand_over(track_id, successor)
            door.forget(track_id)
        if record is not None and not self.visits.track_ended(record, alive):
            self.staff.track_ended(record, alive)
