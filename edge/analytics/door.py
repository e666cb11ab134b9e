"""Door-line counting: which way a person crossed a door line, counted once however much they jitter.

A door line is a segment on the floor plan, with an inside side. A track's committed side changes only once
it is `hysteresis_m` past the line, so standing on the line never counts; and a change of side counts as a
crossing only if the track's path actually crossed the segment since its last committed side (walking round
the end of the line is not a crossing).

A person whose track breaks while they cross (hidden behind someone at the line) is tracked again on the
other side by a new track: `hand_over` gives the new track the old one's committed side and last position,
so the crossing still counts, once. Which new track continues the old one is decided in
`edge.tracking.relink.door_successor`; a door counter only carries the line's state over.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from edge.config import DoorConfig
from vision_models.arrays import XY

Direction = Literal["in", "out"]


def _cross(o: XY, a: XY, b: XY) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def segments_intersect(p1: XY, p2: XY, q1: XY, q2: XY) -> bool:
    """True when segment p1-p2 meets segment q1-q2 (touching counts)."""
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    if ((d1 > 0 and d2 < 0) or (d1 < 0 and d2 > 0)) and ((d3 > 0 and d4 < 0) or (d3 < 0 and d4 > 0)):
        return True

    def on(a: XY, b: XY, c: XY, d: float) -> bool:
        return (
            d == 0
            and min(a[0], b[0]) <= c[0] <= max(a[0], b[0])
            and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])
        )

    return on(q1, q2, p1, d1) or on(q1, q2, p2, d2) or on(p1, p2, q1, d3) or on(p1, p2, q2, d4)


@dataclass
class _TrackSide:
    side: int  # +1 inside, -1 outside, 0 not yet committed
    crossed: bool
    last_xy: XY
    counted: bool = False
    """The track has counted a crossing of its own."""


class DoorCounter:
    """Counts crossings of one door line by tracks (floor metres)."""

    def __init__(self, door: DoorConfig) -> None:
        self.door = door
        (x1, y1), (x2, y2) = door.line_m
        self._a: XY = (x1, y1)
        self._b: XY = (x2, y2)
        length = ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5
        nx, ny = -(y2 - y1) / length, (x2 - x1) / length
        px, py = door.inside_point_m
        if nx * (px - x1) + ny * (py - y1) < 0:
            nx, ny = -nx, -ny
        self._normal: XY = (nx, ny)
        # The segment used for the crossing test reaches `hysteresis_m` past each end: a foot point is never
        # exact, and a person cut by the image border at the end of the line still crosses it.
        ux, uy = (x2 - x1) / length, (y2 - y1) / length
        m = door.hysteresis_m
        self._a_ext: XY = (x1 - ux * m, y1 - uy * m)
        self._b_ext: XY = (x2 + ux * m, y2 + uy * m)
        self._tracks: dict[int, _TrackSide] = {}
        self.counts: dict[Direction, int] = {"in": 0, "out": 0}

    @property
    def inward(self) -> XY:
        """The unit vector across the line into the shop."""
        return self._normal

    def signed_distance_m(self, xy: XY) -> float:
        """Distance from the door's (infinite) line, positive on the inside."""
        return self._normal[0] * (xy[0] - self._a[0]) + self._normal[1] * (xy[1] - self._a[1])

    def side(self, xy: XY) -> int:
        """+1 when at least `hysteresis_m` inside, -1 when as far outside, 0 in between."""
        d = self.signed_distance_m(xy)
        h = max(self.door.hysteresis_m, 1e-9)
        return 1 if d >= h else -1 if d <= -h else 0

    def within_span(self, xy: XY, margin_m: float = 0.0) -> bool:
        """True when `xy` projects onto the segment (extended by `margin_m` at both ends)."""
        ax, ay = self._a
        bx, by = self._b
        length2 = (bx - ax) ** 2 + (by - ay) ** 2
        t = ((xy[0] - ax) * (bx - ax) + (xy[1] - ay) * (by - ay)) / length2
        margin = margin_m / length2**0.5
        return bool(-margin <= t <= 1 + margin)

    def observe(self, track_id: int, xy: XY, first_xy: XY | None = None) -> Direction | None:
        """Feed a track's observed position; returns the direction of a completed crossing, if any.

        On a track's first observation its path is taken to start at `first_xy` (where the tracker first
        saw it, before confirmation), so a crossing made while the track was tentative still counts.
        """
        state = self._tracks.get(track_id)
        if state is None:
            start = first_xy if first_xy is not None else xy
            state = _TrackSide(self.side(start), False, start)
            self._tracks[track_id] = state
        d_last, d_now = self.signed_distance_m(state.last_xy), self.signed_distance_m(xy)
        if (d_last <= 0 <= d_now or d_now <= 0 <= d_last) and segments_intersect(
            state.last_xy, xy, self._a, self._b
        ):
            state.crossed = True
        state.last_xy = xy
        h = max(self.door.hysteresis_m, 1e-9)
        new = 1 if d_now >= h else -1 if d_now <= -h else 0
        if new == 0:
            return None
        if state.side == 0 or new == state.side:
            # First commitment, or back on the committed side after jitter: no crossing.
            state.side = new
            state.crossed = False
            return None
        state.side = new
        crossed, state.crossed = state.crossed, False
        if not crossed:
            return None  # changed side round the end of the line
        direction: Direction = "in" if new > 0 else "out"
        self.counts[direction] += 1
        state.counted = True
        return direction

    def coming_in(self, track_id: int) -> bool:
        """True when the track's committed side is still the street's: they have not crossed in (yet)."""
        state = self._tracks.get(track_id)
        return state is not None and state.side < 0

    def hand_over(self, old_id: int, new_id: int) -> None:
        """Track `new_id` is the person of the ended track `old_id`, tracked again. Unless the new track
        has counted a crossing already, it continues from the old track's committed side and last position:
        if the path from there to where the new track is now crosses the line, its next committed step on
        this side counts that crossing."""
        old, new = self._tracks.get(old_id), self._tracks.get(new_id)
        if old is None or old.side == 0 or new is None or new.counted or new.side == old.side:
            return
        new.crossed = new.crossed or segments_intersect(old.last_xy, new.last_xy, self._a, self._b)
        new.side = old.side

    def forget(self, track_id: int) -> None:
        self._tracks.pop(track_id, None)

    def forget_all(self) -> None:
        self._tracks.clear()


def outside_doors(doors: Iterable[DoorCounter], xy: XY) -> bool:
    """True when `xy` is beyond a door line (outside it, within 1 m of its span): off the showroom floor."""
    return any(d.signed_distance_m(xy) < 0 and d.within_span(xy, margin_m=1.0) for d in doors)
