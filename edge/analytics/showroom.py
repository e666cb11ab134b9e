"""Showroom analytics: confirmed floor tracks and time in, contract events out.

Pure: state in, events out; no clock reads, no I/O. Time comes only from the `ts_utc` of each step, so a
recorded video replays to the same events. Definitions follow DOMAIN.md:

- A visit starts when a non-staff track crosses a door line inward and does not cross straight back out
  within `visit_confirm_s` (then `visit.started` is sent, stamped with the crossing time). It ends at an
  outward crossing (`door`), when the person has been unseen for `lost_after_s` (`lost`, stamped with the
  last sighting), or when the node stops (`shutdown`).
- When the tracker gives up on a visitor's track (hidden too long), the visit is kept and a new track that
  appears inside near where they vanished takes it over (or a track already there that is on no visit: the
  tracker may have followed the person with a second track): a track break neither ends a visit nor starts
  a new one, and browse dwell runs on across it.
- A visitor whose track ends inside a car's interior or at one of its door areas is parked "in" that car
  (sitting under the roof, invisible from the ceiling): the visit waits up to `in_car_max_s` without any
  motion prediction, and a new track that starts at that car takes it over (within `lost_after_s`, a track
  elsewhere within reach may take it over too, as for any lost visitor). Reappearing from the car after
  vanishing into it through a door area is a car entry (DOMAIN.md); reappearing anywhere else is not.
  With on-box re-identification (`tracker.reid`), a track already at the car that looks like somebody else
  does not take the visit as the visitor's track ends there: it is someone walking by, and the visit parks.
- A staff flag (staff-only area, or the uniform cue over `min_observations` frames) stops a visit from
  starting; it never ends a visit already started, so a wrong flag cannot create or destroy a visit. A track
  on a visit that walks into a staff-only area follows a staff member now: the visit lets go of it and waits
  for its visitor as for a track that ended. A flag goes out of the door with its track (whoever comes
  back in on it is judged afresh), and passes to a staff member's new track only when, with
  re-identification, the new track looks like them: on position alone it lands on visitors more often.
- Browse dwell, car entries and reception are per visit; heat is per minute for every non-staff track on the
  floor, a briefly lost one (hidden behind a car or someone else) at its last position.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NamedTuple

from shapely.geometry import Point

from edge.analytics.door import Direction, DoorCounter
from edge.analytics.heat import HeatGrid
from edge.analytics.reception import ReceptionStreak, near_staff, step_reception
from edge.analytics.zones import (
    CarVisit,
    CarZones,
    Zone,
    ZoneStay,
    car_at,
    close_car,
    reappeared_from_car,
    step_car,
    step_stay,
)
from edge.config import NodeConfig
from edge.events import CarEntry, Envelope, EventStamper, Heat, Reception, VisitEnded, VisitStarted, ZoneDwell
from edge.tracking.appearance import cosine_distance
from edge.tracking.base import FloatArray, TrackerStep, TrackState

XY = tuple[float, float]
EndReason = Literal["door", "lost", "shutdown"]

ADOPT_BASE_M = 2.5
ADOPT_SPEED_MPS = 1.0
ADOPT_MAX_M = 12.0
"""A new track takes over a vanished visitor within 2.5 m + 1 m/s of absence (at most 12 m) of where they
were last seen: a person walks on while hidden, but not across the store."""
CAR_RELINK_M = 3.0
"""A new track starting this close to a car's interior or door areas may be a person getting out of it
(a track is confirmed some steps after the person shows up, and beside a car they are often hidden)."""
DOOR_SUCCESSOR_MAX_S = 5.0
"""A track started this long after another was last seen no longer continues it across a door line."""
HEIR_OVERLAP_S = 1.0
"""A track confirmed up to this long before a person's last sighting may still be them (confirmation lags
the track's start by a few frames)."""


def _walking_reach_m(gap_s: float) -> float:
    """How far from where someone was last seen a track `gap_s` seconds later may still be them."""
    return min(ADOPT_MAX_M, ADOPT_BASE_M + ADOPT_SPEED_MPS * gap_s)


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


class _Sighting(NamedTuple):
    """A track's latest observation: where, when, and (with re-identification) what the person looked like."""

    xy: XY
    seen_utc: datetime
    appearance: FloatArray | None


@dataclass
class _StaffGhost:
    last_xy: XY
    last_seen_utc: datetime
    appearance: FloatArray | None = None


class ShowroomAnalytics:
    """All of one node's analytics; `step` once per time step with the tracker's confirmed tracks."""

    def __init__(self, config: NodeConfig, stamper: EventStamper) -> None:
        self.config = config
        self.stamper = stamper
        self.thresholds = config.thresholds
        self.doors = [DoorCounter(d) for d in config.doors]
        self.cars = [
            CarZones(c.id, Zone(c.browse_zone_m), Zone(c.interior_zone_m), [Zone(a) for a in c.door_areas_m])
            for c in config.cars
        ]
        self.staff_areas = [Zone(a.polygon_m) for a in config.staff_areas]
        self.heat = HeatGrid(config.floor.size_m, config.thresholds.heat_cell_m)
        self.visits: dict[str, Visit] = {}
        self._visit_of_track: dict[int, str] = {}
        self._seen_tracks: set[int] = set()
        self._staff: set[int] = set()
        self._uniform_votes: Counter[int] = Counter()
        self._staff_ghosts: list[_StaffGhost] = []
        self._last_obs: dict[int, _Sighting] = {}
        """Each track's latest observation."""
        reid = config.tracker.reid
        self._same_person_distance = reid.same_person_distance if reid is not None else math.inf
        self._first_seen: dict[int, datetime] = {}
        self._door_successors: set[int] = set()
        """Tracks that continue an ended track at the door lines (each continues at most one)."""
        self._last_ts: datetime | None = None
        self.crossings: Counter[tuple[str, Direction]] = Counter()
        self.steps = 0
        self.rejected_steps = 0
        """Steps whose time was not after the previous step's (dropped)."""
        self.rejected_tracks = 0
        """Track states with a NaN or infinite position (dropped)."""

    # ---------------------------------------------------------------------------------------------
    # Public API
    # ---------------------------------------------------------------------------------------------

    @property
    def occupancy(self) -> int:
        """Visitors on the floor now: visits started and not ended (staff excluded)."""
        return sum(1 for v in self.visits.values() if v.confirmed)

    def is_staff(self, track_id: int) -> bool:
        return track_id in self._staff

    def visitor_of(self, track_id: int) -> str | None:
        """The visitor id of the visit this track is on, if any (never sent: for overlays and diagnosis)."""
        return self._visit_of_track.get(track_id)

    def step(
        self, ts_utc: datetime, tracks: TrackerStep, uniform_tracks: frozenset[int] = frozenset()
    ) -> list[Envelope]:
        """Advance to `ts_utc` with the tracker's confirmed tracks; returns the events this step produced.

        `uniform_tracks` are the ids of tracks whose torso matched the staff uniform in this frame.
        """
        out: list[Envelope] = []
        if self._last_ts is not None and ts_utc <= self._last_ts:
            self.rejected_steps += 1  # time went backwards: nothing from this step is counted
            return out
        tracks = self._finite(tracks)
        dt = 0.0 if self._last_ts is None else (ts_utc - self._last_ts).total_seconds()
        self._last_ts = ts_utc
        self.steps += 1
        out += self._roll_heat(ts_utc)
        by_id = {t.track_id: t for t in tracks.tracks}
        for track in tracks.tracks:
            if track.track_id not in self._seen_tracks:
                self._seen_tracks.add(track.track_id)
                self._first_seen[track.track_id] = ts_utc
                self._on_new_track(track)
        self._mark_staff(tracks.tracks, uniform_tracks)
        for track in tracks.tracks:
            if track.observed:
                out += self._doors(ts_utc, track)
        out += self._confirm_visits(ts_utc)
        staff_xy = [t.xy_m for t in tracks.tracks if t.observed and self._counts_as_staff(t.track_id)]
        for visit in list(self.visits.values()):
            if visit.track_id is not None and visit.track_id in by_id:
                out += self._visit_step(ts_utc, visit, by_id[visit.track_id], staff_xy)
        for track_id in tracks.ended:
            self._on_track_ended(track_id, tracks.tracks)
        out += self._expire_lost(ts_utc)
        self._staff_ghosts = [
            g
            for g in self._staff_ghosts
            if (ts_utc - g.last_seen_utc).total_seconds() <= self.thresholds.lost_after_s
        ]
        self._add_heat(tracks.tracks, dt)
        return out

    def _finite(self, step: TrackerStep) -> TrackerStep:
        good = [t for t in step.tracks if math.isfinite(t.xy_m[0]) and math.isfinite(t.xy_m[1])]
        if len(good) == len(step.tracks):
            return step
        self.rejected_tracks += len(step.tracks) - len(good)
        return TrackerStep(good, step.ended)

    def flush(self, ts_utc: datetime, reason: Literal["shutdown", "lost"] = "shutdown") -> list[Envelope]:
        """End every open visit with `reason` and send the heat of the minute in progress."""
        out: list[Envelope] = []
        for visit in list(self.visits.values()):
            if not visit.confirmed:
                del self.visits[visit.visitor_id]
                continue
            end = ts_utc if reason == "shutdown" else max(visit.last_seen_utc, visit.started_at)
            out += self._end_visit(visit, end, None, reason)
        self._visit_of_track.clear()
        # The tracker starts afresh after a flush: forget every track.
        for door in self.doors:
            door.forget_all()
        self._seen_tracks.clear()
        self._staff.clear()
        self._uniform_votes.clear()
        self._staff_ghosts.clear()
        self._last_obs.clear()
        self._first_seen.clear()
        self._door_successors.clear()
        done = self.heat.take()
        if done is not None:
            out.append(self._heat_event(done, max(ts_utc, done[0])))
        return out

    # ---------------------------------------------------------------------------------------------
    # Tracks appearing and disappearing
    # ---------------------------------------------------------------------------------------------

    def _is_outside(self, xy: XY) -> bool:
        return any(d.signed_distance_m(xy) < 0 and d.within_span(xy, margin_m=1.0) for d in self.doors)

    def _on_new_track(self, track: TrackState) -> None:
        """A track the analytics have not seen: it may be a vanished visitor or staff member coming back.

        Candidates are visits whose track ended (within reach of where they were last seen, or parked in a
        car this track starts at) and staff members whose track ended. A visitor parked in the car the track
        starts at comes first; otherwise the nearest candidate takes the track.
        """
        if self._is_outside(track.first_xy_m):
            return
        at_cars = self._cars_near(track.first_xy_m)
        best: tuple[int, float, int, str] | None = None
        for visit in self.visits.values():
            if visit.track_id is not None:
                continue
            gap_s = max(0.0, (track.last_seen_utc - visit.last_seen_utc).total_seconds())
            dist = math.dist(track.first_xy_m, visit.last_xy)
            rank = 1
            if visit.in_car is not None and visit.in_car in at_cars:
                ok, rank = True, 0  # someone getting out of the car they vanished into comes first
            else:
                reach = _walking_reach_m(gap_s)
                ok = dist <= reach and gap_s <= self.thresholds.lost_after_s
            if ok and (best is None or (rank, dist, 0, visit.visitor_id) < best):
                best = (rank, dist, 0, visit.visitor_id)
        ghost = self._ghost_for(track)
        if ghost is not None and (best is None or (1, ghost[0], 1, str(ghost[1])) < best):
            best = (1, ghost[0], 1, str(ghost[1]))
        if best is None:
            return
        if best[2] == 1:
            self._staff.add(track.track_id)
            del self._staff_ghosts[int(best[3])]
            return
        visit = self.visits[best[3]]
        visit.track_id = track.track_id
        self._visit_of_track[track.track_id] = visit.visitor_id
        if visit.in_car is not None and visit.in_car in at_cars:
            reappeared_from_car(visit.cars.setdefault(visit.in_car, CarVisit()), visit.last_seen_utc)
        visit.in_car = None

    def _ghost_for(self, track: TrackState) -> tuple[float, int] | None:
        """(distance, index) of the nearest staff member whose track ended that `track` may be: started at
        most `lost_after_s` after their last sighting (or just before it) within walking reach of it, and
        looking like them. Without re-identification, none: on position alone the track starting there is
        more often a visitor's in a busy showroom."""
        if track.appearance is None or self._is_outside(track.first_xy_m):
            return None
        born = self._first_seen.get(track.track_id, track.last_seen_utc)
        best: tuple[float, int] | None = None
        for k, ghost in enumerate(self._staff_ghosts):
            gap_s = (born - ghost.last_seen_utc).total_seconds()
            if gap_s < -HEIR_OVERLAP_S or gap_s > self.thresholds.lost_after_s:
                continue
            dist = math.dist(track.first_xy_m, ghost.last_xy)
            reach = _walking_reach_m(max(gap_s, 0.0))
            if (
                dist <= reach
                and self._looks_like(track, ghost.appearance)
                and (best is None or (dist, k) < best)
            ):
                best = (dist, k)
        return best

    def _cars_near(self, xy: XY) -> set[str]:
        """The car nearest to `xy` (by its interior and door areas) when within `CAR_RELINK_M`: the car a
        person starting there may be getting out of (empty set when none is that close)."""
        point = Point(xy)
        best: tuple[float, str] | None = None
        for car in self.cars:
            dist = min(area.distance(point) for area in car.relink_areas())
            if dist <= CAR_RELINK_M and (best is None or (dist, car.car_id) < best):
                best = (dist, car.car_id)
        return set() if best is None else {best[1]}

    def _on_track_ended(self, track_id: int, alive: list[TrackState]) -> None:
        self._seen_tracks.discard(track_id)  # the tracker never reuses an id
        self._first_seen.pop(track_id, None)
        successor = self._door_successor(track_id, alive)
        self._door_successors.discard(track_id)
        for door in self.doors:
            if successor is not None:
                door.hand_over(track_id, successor)
            door.forget(track_id)
        visitor_id = self._visit_of_track.pop(track_id, None)
        last = self._last_obs.pop(track_id, None)
        was_staff = track_id in self._staff
        self._staff.discard(track_id)
        self._uniform_votes.pop(track_id, None)
        if visitor_id is not None and visitor_id in self.visits:
            visit = self.visits[visitor_id]
            visit.track_id = None
            # The person may already be tracked again: the tracker keeps a lost track for a few seconds,
            # and a new track can start meanwhile where they reappeared.
            # At a car the visitor may have sat in it: a track there that looks like somebody else is
            # someone walking by, and the visit waits in the car instead.
            unlike = (
                last.appearance if last is not None and car_at(self.cars, visit.last_xy) is not None else None
            )
            heir = self._heir(visit.last_xy, visit.last_seen_utc, alive, unlike_of=unlike)
            if heir is not None:
                visit.track_id = heir
                self._visit_of_track[heir] = visitor_id
            else:
                visit.in_car = car_at(self.cars, visit.last_xy)
        elif was_staff and last is not None:
            # Only a track started since (an older one beside a staff member is usually a visitor they are
            # serving), and only one that looks like them: on position alone the flag lands on visitors
            # more often than on staff in a busy showroom, and costs their group its receptions.
            heir = self._new_track_near(
                last.xy,
                last.seen_utc,
                alive,
                skip=lambda t: (
                    t.track_id in self._visit_of_track
                    or t.track_id in self._staff
                    or not self._looks_like(t, last.appearance)
                ),
            )
            if heir is not None:
                self._staff.add(heir)
            else:
                self._staff_ghosts.append(_StaffGhost(last.xy, last.seen_utc, last.appearance))

    def _looks_like(self, track: TrackState, appearance: FloatArray | None) -> bool:
        """The track's person looks like the one of `appearance` (both known, re-identification on)."""
        distance = self._look_distance(track, appearance)
        return distance is not None and distance <= self._same_person_distance

    def _looks_unlike(self, track: TrackState, appearance: FloatArray | None) -> bool:
        """The track's person looks like somebody else than the one of `appearance` (both known)."""
        distance = self._look_distance(track, appearance)
        return distance is not None and distance > self._same_person_distance

    @staticmethod
    def _look_distance(track: TrackState, appearance: FloatArray | None) -> float | None:
        """Cosine distance between the track's appearance and `appearance`; None when either is unknown."""
        if appearance is None or track.appearance is None:
            return None
        return cosine_distance(track.appearance, appearance)

    def _door_successor(self, track_id: int, alive: list[TrackState]) -> int | None:
        """The track that continues an ended track for the door lines: the nearest one started since the
        ended track was last seen (at most `DOOR_SUCCESSOR_MAX_S` later), within walking reach of that spot,
        and not continuing another track."""
        last = self._last_obs.get(track_id)
        if last is None:
            return None
        successor = self._new_track_near(
            last.xy,
            last.seen_utc,
            alive,
            skip=lambda t: t.track_id in self._door_successors,
            max_gap_s=DOOR_SUCCESSOR_MAX_S,
        )
        if successor is not None:
            self._door_successors.add(successor)
        return successor

    def _heir(
        self,
        last_xy: XY,
        last_seen_utc: datetime,
        alive: list[TrackState],
        older_too: bool = True,
        unlike_of: FloatArray | None = None,
    ) -> int | None:
        """A track started since `last_seen_utc` near `last_xy` (or, `older_too`, one already there), not
        on a visit and not staff, and (given `unlike_of`, the person's appearance) not looking like
        somebody else: the same person, tracked again. The nearest one, or None."""
        return self._new_track_near(
            last_xy,
            last_seen_utc,
            alive,
            skip=lambda t: (
                t.track_id in self._visit_of_track
                or t.track_id in self._staff
                or self._is_outside(t.first_xy_m)
                or self._looks_unlike(t, unlike_of)
            ),
            older_too=older_too,
        )

    def _new_track_near(
        self,
        last_xy: XY,
        last_seen_utc: datetime,
        alive: list[TrackState],
        *,
        skip: Callable[[TrackState], bool],
        max_gap_s: float = math.inf,
        older_too: bool = False,
    ) -> int | None:
        """The nearest track (not `skip`ped) that started since `last_seen_utc` (up to `max_gap_s` later)
        within walking reach of `last_xy`: 2.5 m + 1 m/s of the gap, at most 12 m.

        `older_too`: a track that started earlier also qualifies when it is now within reach of `last_xy`
        (measured from its own last sighting): the tracker sometimes follows one person with two tracks, or
        moves a person onto a track of their own in a crowd, and the track left over is theirs."""
        best: tuple[float, int] | None = None
        for track in alive:
            born = self._first_seen.get(track.track_id)
            if born is None or skip(track):
                continue
            gap_s = (born - last_seen_utc).total_seconds()
            spot = track.first_xy_m
            if gap_s < -HEIR_OVERLAP_S and older_too:
                gap_s = abs((track.last_seen_utc - last_seen_utc).total_seconds())
                spot = track.xy_m
            elif gap_s < -HEIR_OVERLAP_S or gap_s > max_gap_s:
                continue  # already tracked while this person was still seen (someone else), or too late
            reach = _walking_reach_m(max(gap_s, 0.0))
            dist = math.dist(spot, last_xy)
            if dist <= reach and (best is None or (dist, track.track_id) < best):
                best = (dist, track.track_id)
        return None if best is None else best[1]

    def _mark_staff(self, tracks: list[TrackState], uniform_tracks: frozenset[int]) -> None:
        appearance = self.config.staff_appearance
        for track in tracks:
            if not track.observed:
                continue
            self._last_obs[track.track_id] = _Sighting(track.xy_m, track.last_seen_utc, track.appearance)
            if any(area.contains(track.xy_m) for area in self.staff_areas):
                self._staff.add(track.track_id)
                self._let_go(track.track_id)
            elif track.track_id not in self._staff and track.track_id not in self._visit_of_track:
                # A staff member's new track is often recognised only once its look is known.
                ghost = self._ghost_for(track)
                if ghost is not None:
                    self._staff.add(track.track_id)
                    del self._staff_ghosts[ghost[1]]
            if appearance is not None and track.track_id in uniform_tracks:
                self._uniform_votes[track.track_id] += 1
                if self._uniform_votes[track.track_id] >= appearance.min_observations:
                    self._staff.add(track.track_id)
        for track_id in self._staff:
            visitor_id = self._visit_of_track.get(track_id)
            if visitor_id is not None and not self.visits[visitor_id].confirmed:
                # Staff walking in through the door: the visit never started.
                del self.visits[visitor_id]
                del self._visit_of_track[track_id]

    def _let_go(self, track_id: int) -> None:
        """A track on a started visit walked into a staff-only area: it follows a staff member now (the
        tracker swapped people, or the visit was handed on to the wrong track), so the visit lets go of it
        and waits for its visitor as for a track that ended. The visit itself goes on: a staff flag never
        ends one."""
        visitor_id = self._visit_of_track.get(track_id)
        if visitor_id is None or not self.visits[visitor_id].confirmed:
            return
        del self._visit_of_track[track_id]
        self.visits[visitor_id].track_id = None

    def _counts_as_staff(self, track_id: int) -> bool:
        """Staff for reception and heat: flagged, and not on a visit (a wrong flag changes no visit)."""
        return track_id in self._staff and track_id not in self._visit_of_track

    # ---------------------------------------------------------------------------------------------
    # Doors and visits
    # ---------------------------------------------------------------------------------------------

    def _doors(self, ts_utc: datetime, track: TrackState) -> list[Envelope]:
        out: list[Envelope] = []
        for door in self.doors:
            direction = door.observe(track.track_id, track.xy_m, track.first_xy_m)
            if direction is None:
                continue
            self.crossings[(door.door.id, direction)] += 1
            visitor_id = self._visit_of_track.get(track.track_id)
            if direction == "out":
                # Whoever walks out is judged afresh on coming back in: the tracker may pick up someone
                # else entering where they left, and staff coming back are flagged again by the staff-only
                # areas or the uniform cue.
                self._staff.discard(track.track_id)
                self._uniform_votes.pop(track.track_id, None)
            if direction == "in":
                if visitor_id is None and track.track_id not in self._staff:
                    self._start_visit(ts_utc, track, door.door.id)
            elif visitor_id is not None:
                visit = self.visits[visitor_id]
                if visit.confirmed:
                    out += self._end_visit(visit, ts_utc, door.door.id, "door")
                else:
                    del self.visits[visitor_id]  # stepped in and straight back out: not a visitor
                del self._visit_of_track[track.track_id]
        return out

    def _start_visit(self, ts_utc: datetime, track: TrackState, door_id: str) -> None:
        visitor_id = self.stamper.ids.visitor_id()
        self.visits[visitor_id] = Visit(visitor_id, door_id, ts_utc, track.track_id, ts_utc, track.xy_m)
        self._visit_of_track[track.track_id] = visitor_id

    def _confirm_visits(self, ts_utc: datetime) -> list[Envelope]:
        out: list[Envelope] = []
        for visit in self.visits.values():
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

    def _end_visit(
        self, visit: Visit, ts_utc: datetime, door_id: str | None, reason: EndReason
    ) -> list[Envelope]:
        out = self._close_visit_parts(visit, ts_utc)
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
        del self.visits[visit.visitor_id]
        return out

    def _expire_lost(self, ts_utc: datetime) -> list[Envelope]:
        out: list[Envelope] = []
        for visit in list(self.visits.values()):
            if visit.track_id is not None:
                continue
            wait_s = self.thresholds.lost_after_s if visit.in_car is None else self.thresholds.in_car_max_s
            if (ts_utc - visit.last_seen_utc).total_seconds() >= wait_s:
                if visit.confirmed:
                    out += self._end_visit(visit, max(visit.last_seen_utc, visit.started_at), None, "lost")
                else:
                    del self.visits[visit.visitor_id]
        return out

    # ---------------------------------------------------------------------------------------------
    # Per-visit analytics
    # ---------------------------------------------------------------------------------------------

    def _visit_step(
        self, ts_utc: datetime, visit: Visit, track: TrackState, staff_xy: list[XY]
    ) -> list[Envelope]:
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

    def _close_visit_parts(self, visit: Visit, ts_utc: datetime) -> list[Envelope]:
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

    # ---------------------------------------------------------------------------------------------
    # Heat
    # ---------------------------------------------------------------------------------------------

    def _roll_heat(self, ts_utc: datetime) -> list[Envelope]:
        done = self.heat.roll(ts_utc)
        return [] if done is None else [self._heat_event(done, HeatGrid.minute_end(done[0]))]

    def _add_heat(self, tracks: list[TrackState], dt: float) -> None:
        for track in tracks:
            # A track briefly lost still stands for a person there (hidden behind a car or someone else).
            if not self._counts_as_staff(track.track_id) and not self._is_outside(track.xy_m):
                self.heat.add(track.xy_m, dt)
        self.heat.note_occupancy(self.occupancy)

    def _heat_event(
        self, done: tuple[datetime, list[tuple[int, int, float]], int], ts_utc: datetime
    ) -> Envelope:
        minute, cells, occupancy_max = done
        return self.stamper.stamp(
            Heat,
            ts_utc,
            minute=minute,
            cell_m=self.heat.cell_m,
            cells=cells,
            occupancy_max=occupancy_max,
        )
