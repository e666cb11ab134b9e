"""Re-linking: is a track the tracker started, or one it kept, a person whose track was lost?

The tracker gives up on a person hidden too long (behind a car or someone else, sitting under a car's roof)
and starts a new track when they are seen again; it sometimes follows one person with two tracks, or moves
a person onto a track of their own in a crowd. This module is the one place that decides which track, if
any, is such a lost person tracked again. It takes plain data (tracks, times, last sightings, appearances)
and knows nothing of visits, doors or staff areas; callers pass the candidates they allow.

- Walking reach: a track may be someone last seen `gap_s` earlier only within 2.5 m + 1 m/s of the gap (at
  most 12 m) of where they were last seen: a person walks on while hidden, but not across the store.
- A new track takes over a lost visitor within reach (within `lost_after_s`), or a visitor parked in the
  car the track starts at (someone getting out of the car they vanished into comes first); otherwise the
  nearest candidate takes it.
- When a visitor's track ends, a track started since near where they were last seen (or one already there:
  the tracker may have followed the person with a second track) continues the visit. With
  re-identification, at a car a track that looks like somebody else is someone walking by: it does not.
- A staff member's flag passes to a new track only when, with re-identification, it looks like them: on
  position alone it lands on visitors more often than on staff in a busy showroom. An older track beside
  a staff member is usually a visitor they are serving, so only a track started since may take the flag.
- For the door lines, the track that continues an ended one is the nearest one started since (at most
  `DOOR_SUCCESSOR_MAX_S` later) within walking reach, and continuing no other track.
- Swaps in a doorway (a track that came in walks back out): `Relinker.door_swap`, with the rule and its
  settings in `edge.tracking.doorway`.

Why "relink" and not "identity": nothing here identifies a person; it only links a lost track to the
track that follows the same person on, with what is on the box (positions and on-box appearance).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from edge.tracking.appearance import cosine_distance
from edge.tracking.base import Sighting, TrackState
from edge.tracking.doorway import Trail, swap_partner
from vision_models.arrays import XY, Float64Array

ADOPT_BASE_M = 2.5
ADOPT_SPEED_MPS = 1.0
ADOPT_MAX_M = 12.0
"""A new track takes over a vanished person within 2.5 m + 1 m/s of absence (at most 12 m) of where they
were last seen: a person walks on while hidden, but not across the store."""
CAR_RELINK_M = 3.0
"""A new track starting this close to a car's interior or door areas may be a person getting out of it
(a track is confirmed some steps after the person shows up, and beside a car they are often hidden)."""
DOOR_SUCCESSOR_MAX_S = 5.0
"""A track started this long after another was last seen no longer continues it across a door line."""
HEIR_OVERLAP_S = 1.0
"""A track confirmed up to this long before a person's last sighting may still be them (confirmation lags
the track's start by a few frames)."""


def walking_reach_m(gap_s: float) -> float:
    """How far from where someone was last seen a track `gap_s` seconds later may still be them."""
    return min(ADOPT_MAX_M, ADOPT_BASE_M + ADOPT_SPEED_MPS * gap_s)


@dataclass(frozen=True)
class Candidate:
    """An alive track that may be a lost person tracked again, with when it was first seen."""

    track: TrackState
    born_utc: datetime


@dataclass(frozen=True)
class LostVisitor:
    """A visit whose track ended: where its visitor was last seen, and the car they vanished into (if any)."""

    visitor_id: str
    last_xy: XY
    last_seen_utc: datetime
    in_car: str | None


@dataclass(frozen=True)
class VisitRelink:
    """The new track is the visitor of `visitor_id`; `from_car`: getting out of the car they vanished into."""

    visitor_id: str
    distance_m: float
    from_car: bool
    kind: Literal["visit"] = "visit"

    def sort_key(self) -> tuple[int, float, int, str]:
        """Getting out of a car first, then nearest, then a visit before a staff member, then by id."""
        return (0 if self.from_car else 1, self.distance_m, 0, self.visitor_id)


@dataclass(frozen=True)
class StaffRelink:
    """The new track is the staff member lost at `index` in the caller's list of lost staff."""

    index: int
    distance_m: float
    kind: Literal["staff"] = "staff"

    def sort_key(self) -> tuple[int, float, int, str]:
        """As `VisitRelink.sort_key`; a staff member never outranks a visitor at the same distance."""
        return (1, self.distance_m, 1, str(self.index))


Relink = VisitRelink | StaffRelink


def car_left_from(xy: XY, cars: Iterable[tuple[str, Sequence[BaseGeometry]]]) -> str | None:
    """The car nearest to `xy` (by its interior and door areas, given per car id) when within
    `CAR_RELINK_M`: the car a person starting there may be getting out of (None when none is that close)."""
    point = Point(xy)
    best: tuple[float, str] | None = None
    for car_id, areas in cars:
        dist = min(area.distance(point) for area in areas)
        if dist <= CAR_RELINK_M and (best is None or (dist, car_id) < best):
            best = (dist, car_id)
    return None if best is None else best[1]


def nearest_new_track(
    last_xy: XY,
    last_seen_utc: datetime,
    candidates: Iterable[Candidate],
    *,
    max_gap_s: float = math.inf,
    older_too: bool = False,
) -> int | None:
    """The id of the nearest candidate that started since `last_seen_utc` (up to `max_gap_s` later) within
    walking reach of `last_xy`; None when there is none.

    `older_too`: a track that started earlier also qualifies when it is now within reach of `last_xy`
    (measured from its own last sighting): the tracker sometimes follows one person with two tracks, or
    moves a person onto a track of their own in a crowd, and the track left over is theirs."""
    best: tuple[float, int] | None = None
    for candidate in candidates:
        track = candidate.track
        gap_s = (candidate.born_utc - last_seen_utc).total_seconds()
        spot = track.first_xy_m
        if gap_s < -HEIR_OVERLAP_S and older_too:
            gap_s = abs((track.last_seen_utc - last_seen_utc).total_seconds())
            spot = track.xy_m
        elif gap_s < -HEIR_OVERLAP_S or gap_s > max_gap_s:
            continue  # already tracked while this person was still seen (someone else), or too late
        reach = walking_reach_m(max(gap_s, 0.0))
        dist = math.dist(spot, last_xy)
        if dist <= reach and (best is None or (dist, track.track_id) < best):
            best = (dist, track.track_id)
    return None if best is None else best[1]


def door_successor(last: Sighting, candidates: Iterable[Candidate]) -> int | None:
    """The track that continues an ended track (last seen at `last`) for the door lines: the nearest
    candidate started since, at most `DOOR_SUCCESSOR_MAX_S` later, within walking reach of that spot.
    Candidates continuing another ended track already are the caller's to leave out."""
    return nearest_new_track(last.xy, last.seen_utc, candidates, max_gap_s=DOOR_SUCCESSOR_MAX_S)


class Relinker:
    """Re-linking decisions that depend on appearance and on how long a lost person is waited for.

    Args:
        same_person_distance: the largest cosine distance between two appearances of one person
            (`math.inf` without re-identification: then no appearance ever tells two people apart).
        lost_after_s: how long a lost person may still come back on a new track.
    """

    def __init__(self, same_person_distance: float, lost_after_s: float) -> None:
        self.same_person_distance = same_person_distance
        self.lost_after_s = lost_after_s

    def looks_like(self, track: TrackState, appearance: Float64Array | None) -> bool:
        """The track's person looks like the one of `appearance` (both known, re-identification on)."""
        distance = _look_distance(track, appearance)
        return distance is not None and distance <= self.same_person_distance

    def looks_unlike(self, track: TrackState, appearance: Float64Array | None) -> bool:
        """The track's person looks like somebody else than the one of `appearance` (both known)."""
        distance = _look_distance(track, appearance)
        return distance is not None and distance > self.same_person_distance

    def returning(
        self,
        track: TrackState,
        born_utc: datetime,
        getting_out_of: str | None,
        lost_visitors: Iterable[LostVisitor],
        lost_staff: Sequence[Sighting],
    ) -> Relink | None:
        """Who a new track is, among lost visitors and lost staff members, if anyone.

        A visitor parked in the car the track starts at (`getting_out_of`, see `car_left_from`) comes first;
        otherwise the nearest candidate within reach takes the track (a visitor before a staff member at
        the same distance, visitors by id)."""
        best: Relink | None = None
        for visitor in lost_visitors:
            gap_s = max(0.0, (track.last_seen_utc - visitor.last_seen_utc).total_seconds())
            dist = math.dist(track.first_xy_m, visitor.last_xy)
            from_car = visitor.in_car is not None and visitor.in_car == getting_out_of
            # Someone getting out of the car they vanished into may have sat in it for long.
            ok = from_car or (dist <= walking_reach_m(gap_s) and gap_s <= self.lost_after_s)
            found = VisitRelink(visitor.visitor_id, dist, from_car)
            if ok and (best is None or found.sort_key() < best.sort_key()):
                best = found
        staff = self.staff_returning(track, born_utc, lost_staff)
        if staff is not None and (best is None or staff.sort_key() < best.sort_key()):
            best = staff
        return best

    def staff_returning(
        self, track: TrackState, born_utc: datetime, lost_staff: Sequence[Sighting]
    ) -> StaffRelink | None:
        """The nearest lost staff member that `track` (first seen at `born_utc`) may be: started at most
        `lost_after_s` after their last sighting (or just before it) within walking reach of it, and looking
        like them. Without re-identification, none: on position alone the track starting there is more
        often a visitor's in a busy showroom."""
        if track.appearance is None:
            return None
        best: StaffRelink | None = None
        for k, lost in enumerate(lost_staff):
            gap_s = (born_utc - lost.seen_utc).total_seconds()
            if gap_s < -HEIR_OVERLAP_S or gap_s > self.lost_after_s:
                continue
            dist = math.dist(track.first_xy_m, lost.xy)
            reach = walking_reach_m(max(gap_s, 0.0))
            if (
                dist <= reach
                and self.looks_like(track, lost.appearance)
                and (best is None or dist < best.distance_m)
            ):
                best = StaffRelink(k, dist)
        return best

    def heir(
        self,
        last_xy: XY,
        last_seen_utc: datetime,
        candidates: Iterable[Candidate],
        unlike_of: Float64Array | None,
    ) -> int | None:
        """The track that continues a visit whose track ended (its visitor last seen at `last_xy`): the
        nearest candidate started since nearby, or one already there, that (given `unlike_of`, the
        visitor's appearance) does not look like somebody else. Candidates on a visit, staff, or beyond a
        door are the caller's to leave out."""
        kept = [c for c in candidates if not self.looks_unlike(c.track, unlike_of)]
        return nearest_new_track(last_xy, last_seen_utc, kept, older_too=True)

    def door_swap(
        self,
        walked_out: Trail,
        came_in_utc: datetime,
        came_in_look: Float64Array | None,
        inward: XY,
        candidates: Iterable[Trail],
    ) -> int | None:
        """The track that follows on the person who came in at `came_in_utc` on the track that has walked
        back out now, when the tracker swapped them with someone walking out the other way; None when it
        was no swap (`edge.tracking.doorway.swap_partner`, judged with this relinker's appearance rule)."""
        return swap_partner(
            walked_out, came_in_utc, came_in_look, inward, candidates, self.looks_like, self.looks_unlike
        )

    def staff_heir(self, last: Sighting, candidates: Iterable[Candidate]) -> int | None:
        """The track that takes over a staff member's flag as their track ends: the nearest candidate
        started since within reach that looks like them (None without re-identification)."""
        kept = [c for c in candidates if self.looks_like(c.track, last.appearance)]
        return nearest_new_track(last.xy, last.seen_utc, kept)


def _look_distance(track: TrackState, appearance: Float64Array | None) -> float | None:
    """Cosine distance between the track's appearance and `appearance`; None when either is unknown."""
    if appearance is None or track.appearance is None:
        return None
    return cosine_distance(track.appearance, appearance)
