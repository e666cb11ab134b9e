"""The visit lifecycle: a visitor's continuous presence, from the door line in to the door line out.

Definitions follow DOMAIN.md:

- A visit starts when a non-staff track crosses a door line inward and does not cross straight back out
  within `visit_confirm_s` (then `visit.started` is sent, stamped with the crossing time). It ends at an
  outward crossing (`door`), when the person has been unseen for `lost_after_s` (`lost`, stamped with the
  last sighting), or when the node stops (`shutdown`).
- When the tracker gives up on a visitor's track (hidden too long), the visit is kept and waits for its
  visitor: a track break neither ends a visit nor starts a new one (which track takes it over is decided
  in `edge.tracking.relink`).
- A visitor whose track ends inside a car's interior or at one of its door areas is parked "in" that car
  (sitting under the roof, invisible from the ceiling): the visit waits up to `in_car_max_s` without any
  motion prediction, for a new track that starts at that car (within `lost_after_s`, a track elsewhere
  within reach may take it over too, as for any lost visitor). A visit that waits for its visitor is parked
  the same way when someone on no visit got into a car through a door area within its visitor's walking
  reach since (the visitor was followed on another track, or handed over before this box found them).
- A track that came in and walks straight back out (before the visit is confirmed, or within
  `SWAP_WINDOW_S`) may have been swapped in the doorway with someone walking out: when
  `Relinker.door_swap` finds the track the person who came in walks on in on, the visit moves to that track
  and the visit of that track (its person has just walked out) ends at the door. Otherwise the person
  stepped straight back out: an unconfirmed visit was no visit.
- A staff flag stops a visit from starting; it never ends a visit already started, so a wrong flag cannot
  create or destroy a visit. A track on a visit that walks into a staff-only area follows a staff member
  now: the visit lets go of it and waits for its visitor as for a track that ended.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from edge.analytics.door import Direction, DoorCounter, outside_doors
from edge.analytics.reception import ReceptionStreak
from edge.analytics.track_records import TrackRecord, TrackRecords
from edge.analytics.visit_metrics import VisitMetrics
from edge.analytics.zones import CarVisit, CarZones, ZoneStay, car_at, reappeared_from_car, step_car
from edge.config import Thresholds
from edge.events import Envelope, EventStamper, VisitEnded, VisitStarted
from edge.tracking.base import Sighting, TrackState
from edge.tracking.doorway import SWAP_WINDOW_S, Trail
from edge.tracking.relink import LostVisitor, Relinker, VisitRelink, walking_reach_m
from vision_models.arrays import XY, Float64Array

EndReason = Literal["door", "lost", "shutdown"]


@dataclass
class Visit:
    visitor_id: str
    door_id: str
    started_at: datetime
    track_id: int | None
    last_seen_utc: datetime
    last_xy: XY
    confirmed: bool = False
    browsed: bool = False
    entered_car: bool = False
    received: bool = False
    stays: dict[str, ZoneStay] = field(default_factory=dict)
    cars: dict[str, CarVisit] = field(default_factory=dict)
    reception: ReceptionStreak | None = None
    in_car: str | None = None
    """The car the visitor vanished into (their track ended there); None when not parked in a car."""
    came_in_look: Float64Array | None = field(default=None, repr=False, compare=False)
    """The appearance of the track that came in, at the crossing (re-identification on)."""


@dataclass(frozen=True)
class _Vanished:
    """Someone on no visit who got into a car through a door area and vanished there."""

    car_id: str
    seen: Sighting
    state: CarVisit


class Visits:
    """The open visits by visitor id (in order of start), and the link between each visit and its track
    (`Visit.track_id` one way, `TrackRecord.visitor_id` the other)."""

    def __init__(
        self,
        thresholds: Thresholds,
        stamper: EventStamper,
        records: TrackRecords,
        doors: Sequence[DoorCounter],
        relinker: Relinker,
        metrics: VisitMetrics,
    ) -> None:
        self.thresholds = thresholds
        self.stamper = stamper
        self.records = records
        self.doors = doors
        self.relinker = relinker
        self.metrics = metrics
        self.cars: list[CarZones] = metrics.cars
        self.open: dict[str, Visit] = {}
        self._vanished: list[_Vanished] = []

    @property
    def occupancy(self) -> int:
        """Visitors on the floor now: visits started and not ended (staff excluded)."""
        return sum(1 for v in self.open.values() if v.confirmed)

    def crossed(
        self,
        ts_utc: datetime,
        track: TrackState,
        door: DoorCounter,
        direction: Direction,
        alive: Sequence[TrackState] = (),
    ) -> list[Envelope]:
        """`track` crossed `door`: inward it starts a visit (unless on one, or staff), outward it ends its
        visit (one not confirmed yet was no visit: stepped in and straight back out), unless the tracker
        swapped its person with someone walking out (`Relinker.door_swap`; `alive`: this step's tracks)."""
        door_id = door.door.id
        record = self.records[track.track_id]
        visitor_id = record.visitor_id
        if direction == "in":
            if visitor_id is None and not record.staff:
                new_id = self.stamper.ids.visitor_id()
                self.open[new_id] = Visit(new_id, door_id, ts_utc, track.track_id, ts_utc, track.xy_m)
                self.open[new_id].came_in_look = track.appearance
                record.visitor_id = new_id
            return []
        if visitor_id is None:
            return []
        visit = self.open[visitor_id]
        if (ts_utc - visit.started_at).total_seconds() <= SWAP_WINDOW_S:
            partner = self._swapped_with(visit, track, door, alive)
            if partner is not None:
                return self._unswap(ts_utc, visit, track.track_id, partner, door_id)
        return self._walked_out(ts_utc, visit, track.track_id, door_id)

    def _walked_out(self, ts_utc: datetime, visit: Visit, track_id: int, door_id: str) -> list[Envelope]:
        """The visitor of `visit` walked out on track `track_id`: a confirmed visit ends at the door; one not
        confirmed yet was no visit."""
        out: list[Envelope] = []
        if visit.confirmed:
            out += self.end(visit, ts_utc, door_id, "door")
        else:
            del self.open[visit.visitor_id]
        self.records[track_id].visitor_id = None
        return out

    def _swapped_with(
        self, visit: Visit, track: TrackState, door: DoorCounter, alive: Sequence[TrackState]
    ) -> int | None:
        """The track the visitor of `visit` walks on in on, if the tracker swapped them with someone walking
        out on `track` (None: they stepped back out themselves)."""
        record = self.records[track.track_id]
        if not record.trail:
            return None
        walked_out = Trail(track, tuple(record.trail))
        others = self.records.trails(
            alive,
            lambda t, r: (
                t.track_id != track.track_id and not r.staff and not outside_doors(self.doors, t.xy_m)
            ),
        )
        return self.relinker.door_swap(walked_out, visit.started_at, visit.came_in_look, door.inward, others)

    def _unswap(
        self, ts_utc: datetime, visit: Visit, swapped_id: int, partner_id: int, door_id: str
    ) -> list[Envelope]:
        """Undo a swap in the doorway: the person on `swapped_id` who just walked out is the partner's (their
        visit, if any, ends at the door), and `visit` goes on with the partner track."""
        out: list[Envelope] = []
        partner_visit_id = self.records[partner_id].visitor_id
        self.records[swapped_id].visitor_id = None
        if partner_visit_id is not None and partner_visit_id in self.open:
            out += self._walked_out(ts_utc, self.open[partner_visit_id], partner_id, door_id)
        self._link(visit, partner_id)
        visit.in_car = None
        return out

    def confirm(self, ts_utc: datetime) -> list[Envelope]:
        out: list[Envelope] = []
        for visit in self.open.values():
            if (
                not visit.confirmed
                and (ts_utc - visit.started_at).total_seconds() >= self.thresholds.visit_confirm_s
            ):
                visit.confirmed = True
                out.append(
                    self.stamper.stamp(
                        VisitStarted, visit.started_at, visitor_id=visit.visitor_id, door_id=visit.door_id
                    )
                )
        return out

    def step(self, ts_utc: datetime, by_id: dict[int, TrackState], staff_xy: Sequence[XY]) -> list[Envelope]:
        """Per-visit metrics of every visit whose track is alive now."""
        out: list[Envelope] = []
        for visit in list(self.open.values()):
            if visit.track_id is not None and visit.track_id in by_id:
                out += self.metrics.step(ts_utc, visit, by_id[visit.track_id], staff_xy)
        return out

    def end(self, visit: Visit, ts_utc: datetime, door_id: str | None, reason: EndReason) -> list[Envelope]:
        out = self.metrics.close(visit, ts_utc)
        out.append(
            self.stamper.stamp(
                VisitEnded,
                ts_utc,
                visitor_id=visit.visitor_id,
                door_id=door_id,
                started_at=visit.started_at,
                duration_s=round((ts_utc - visit.started_at).total_seconds(), 3),
                browsed=visit.browsed,
                entered_car=visit.entered_car,
                received=visit.received,
                end_reason=reason,
            )
        )
        del self.open[visit.visitor_id]
        return out

    def expire_lost(self, ts_utc: datetime) -> list[Envelope]:
        """End visits unseen for `lost_after_s` (parked in a car: `in_car_max_s`), at their last sighting."""
        out: list[Envelope] = []
        for visit in list(self.open.values()):
            if visit.track_id is not None:
                continue
            wait_s = self.thresholds.lost_after_s if visit.in_car is None else self.thresholds.in_car_max_s
            if (ts_utc - visit.last_seen_utc).total_seconds() >= wait_s:
                if visit.confirmed:
                    out += self.end(visit, max(visit.last_seen_utc, visit.started_at), None, "lost")
                else:
                    del self.open[visit.visitor_id]
        return out

    def flush(self, ts_utc: datetime, reason: Literal["shutdown", "lost"]) -> list[Envelope]:
        """End every open visit with `reason` (a lost one at its last sighting); drop unconfirmed ones."""
        out: list[Envelope] = []
        for visit in list(self.open.values()):
            if not visit.confirmed:
                del self.open[visit.visitor_id]
                continue
            end = ts_utc if reason == "shutdown" else max(visit.last_seen_utc, visit.started_at)
            out += self.end(visit, end, None, reason)
        return out

    # ---------------------------------------------------------------------------------------------
    # Tracks coming and going
    # ---------------------------------------------------------------------------------------------

    def lost(self) -> list[LostVisitor]:
        """The visits waiting for their visitor (no track), in order of start."""
        return [
            LostVisitor(v.visitor_id, v.last_xy, v.last_seen_utc, v.in_car)
            for v in self.open.values()
            if v.track_id is None
        ]

    def resume(self, relink: VisitRelink, track_id: int) -> None:
        """A new track is the visitor of a lost visit: it takes the visit over. Back from the car they
        vanished into, they sat in it (see `reappeared_from_car`)."""
        visit = self.open[relink.visitor_id]
        self._link(visit, track_id)
        if relink.from_car and visit.in_car is not None:
            reappeared_from_car(visit.cars.setdefault(visit.in_car, CarVisit()), visit.last_seen_utc)
        visit.in_car = None

    def track_ended(self, record: TrackRecord, alive: Iterable[TrackState]) -> bool:
        """The tracker ended the track of `record`; False when it was on no open visit.

        The person may already be tracked again: the tracker keeps a lost track for a few seconds, and a
        new track can start meanwhile where they reappeared; that track takes the visit over. Otherwise,
        at a car the visitor is parked in it. At a car the visitor may have sat in it: with
        re-identification, a track there that looks like somebody else is someone walking by, and the
        visit waits in the car instead."""
        visitor_id = record.visitor_id
        if visitor_id is None or visitor_id not in self.open:
            self._park_waiting_visit(record)
            return False
        visit = self.open[visitor_id]
        visit.track_id = None
        last = record.last
        unlike = (
            last.appearance if last is not None and car_at(self.cars, visit.last_xy) is not None else None
        )
        candidates = self.records.candidates(
            alive,
            lambda t, r: r.visitor_id is None and not r.staff and not outside_doors(self.doors, t.first_xy_m),
        )
        heir = self.relinker.heir(visit.last_xy, visit.last_seen_utc, candidates, unlike)
        if heir is not None:
            self._link(visit, heir)
        else:
            visit.in_car = car_at(self.cars, visit.last_xy)
            self.waiting(visit)
        return True

    def _park_waiting_visit(self, record: TrackRecord) -> None:
        """A track on no visit vanished into a car (it came through a door area: someone got in). When a
        visit waits for its visitor within walking reach of that spot (its track broke, or it was handed
        over from a neighbouring box before this box's track of them was found), that visitor is the one
        who got in: the visit is parked in the car, so their getting out is a car entry and takes the visit
        over (without it, the entry was lost and the visit ended as lost while they sat in the car). With
        none waiting yet, the vanishing is kept for `lost_after_s`, for a visit that starts waiting later
        (a hand-over whose person was not found in time)."""
        last = record.last
        if record.staff or last is None:
            return
        car = car_at(self.cars, last.xy)
        if car is None:
            return
        zones = next(c for c in self.cars if c.car_id == car)
        state = CarVisit()  # the track's last seconds beside the car: did it get in through a door area?
        for seen in record.trail:
            step_car(zones, state, seen.xy, True, seen.seen_utc, self.thresholds.car_entry_min_s)
        if state.phase != "inside" and not state.prev_in_door:
            return  # onto the footprint without coming through a door area: not someone getting in
        vanished = _Vanished(car, last, state)
        waiting = [v for v in self.open.values() if v.track_id is None and v.in_car is None and v.confirmed]
        best = min(
            ((d, v.visitor_id) for v in waiting if (d := self._reach_into(v, vanished)) is not None),
            default=None,
        )
        if best is None:
            self._forget_vanished(last.seen_utc)
            self._vanished.append(vanished)
        else:
            self._park(self.open[best[1]], vanished)

    def waiting(self, visit: Visit) -> None:
        """`visit` waits for its visitor without a track (see `_park_waiting_visit`): parked in the car
        that someone on no visit vanished into within its visitor's reach since, if anyone did."""
        if visit.in_car is not None or not visit.confirmed:
            return
        self._forget_vanished(visit.last_seen_utc)
        best = min(
            ((d, k) for k, x in enumerate(self._vanished) if (d := self._reach_into(visit, x)) is not None),
            default=None,
        )
        if best is not None:
            self._park(visit, self._vanished.pop(best[1]))

    def _reach_into(self, visit: Visit, vanished: _Vanished) -> float | None:
        """How far the visitor of `visit` walked to where `vanished` got into the car, when they could
        have (it happened after their last sighting, within `lost_after_s` and walking reach); else None."""
        gap_s = (vanished.seen.seen_utc - visit.last_seen_utc).total_seconds()
        if gap_s < 0 or gap_s > self.thresholds.lost_after_s:
            return None
        dist = math.dist(vanished.seen.xy, visit.last_xy)
        return dist if dist <= walking_reach_m(gap_s) else None

    def _forget_vanished(self, now: datetime) -> None:
        keep_s = self.thresholds.lost_after_s
        self._vanished = [x for x in self._vanished if (now - x.seen.seen_utc).total_seconds() <= keep_s]

    @staticmethod
    def _park(visit: Visit, vanished: _Vanished) -> None:
        visit.in_car, visit.last_xy, visit.last_seen_utc = (
            vanished.car_id,
            vanished.seen.xy,
            vanished.seen.seen_utc,
        )
        visit.cars[vanished.car_id] = vanished.state

    def let_go(self, track_id: int) -> None:
        """A track on a started visit walked into a staff-only area: it follows a staff member now (the
        tracker swapped people, or the visit was handed on to the wrong track), so the visit lets go of it
        and waits for its visitor as for a track that ended. The visit itself goes on."""
        record = self.records[track_id]
        visitor_id = record.visitor_id
        if visitor_id is None or not self.open[visitor_id].confirmed:
            return
        record.visitor_id = None
        self.open[visitor_id].track_id = None

    def drop_staff_entries(self) -> None:
        """Staff walking in through the door: a visit of a staff track not yet confirmed never started."""
        for record in self.records:
            visitor_id = record.visitor_id
            if record.staff and visitor_id is not None and not self.open[visitor_id].confirmed:
                del self.open[visitor_id]
                record.visitor_id = None

    def adopt(self, visit: Visit, track_id: int) -> None:
        """A visit handed over from a neighbouring box (or kept after a hand-over was withdrawn) goes on
        with track `track_id` (`edge.analytics.handover`)."""
        self.open[visit.visitor_id] = visit
        self._link(visit, track_id)
        visit.in_car = None

    def release(self, visit: Visit, ts_utc: datetime) -> list[Envelope]:
        """The visit leaves this box for a neighbouring one without ending: what it measured here goes out
        (dwell, entries, reception so far) and its track lets go of it."""
        out = self.metrics.close(visit, ts_utc)
        if visit.track_id is not None and (record := self.records.get(visit.track_id)) is not None:
            record.visitor_id = None
        visit.track_id = None
        del self.open[visit.visitor_id]
        return out

    def _link(self, visit: Visit, track_id: int) -> None:
        visit.track_id = track_id
        self.records[track_id].visitor_id = visit.visitor_id
