"""Swaps in a doorway: when a track that came in turns round and walks back out, the tracker may have swapped
two people who passed each other in the door.

It did when another track met it there (within `SWAP_MEET_M`) and turned round at the same moment the other
way: walking out until they met, back in since (each at least `SWAP_TURN_M`, measured into the shop). The
person who came in walks on in on the other track. With re-identification, a track that looks like the one
who came in was no swap (they stepped straight back out), and a partner that looks like somebody else is not
them. A person stepping in and straight back out alone, or beside people who walk on, is no swap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from edge.tracking.base import Sighting, TrackState
from vision_models.arrays import XY, Float64Array

SWAP_MEET_M = 1.0
"""Two tracks the tracker may have swapped came this close (floor metres): people passing in a doorway."""
SWAP_TURN_M = 0.3
"""How far (into the shop, metres) each of two swapped tracks moved the one way before they met and the
other way since: more than a foot point's jitter on the line."""
SWAP_LEAD_S = 1.0
"""Two people may meet (and be swapped) this long before the crossing that started the visit."""
SWAP_WINDOW_S = 8.0
"""A track is checked for a swap when it walks back out at most this long after it came in; callers keep
each track's sightings of the last `SWAP_WINDOW_S + SWAP_LEAD_S` seconds (its `Trail`)."""


@dataclass(frozen=True)
class Trail:
    """An alive track with its recent observed sightings (oldest first, one per time step)."""

    track: TrackState
    sightings: Sequence[Sighting]


def _meeting(a: Trail, b: Trail, since_utc: datetime) -> tuple[float, datetime] | None:
    """The closest approach (metres, time) of two trails at the steps both were seen since `since_utc`."""
    b_at = {s.seen_utc: s.xy for s in b.sightings}
    best: tuple[float, datetime] | None = None
    for s in a.sightings:
        other = b_at.get(s.seen_utc)
        if other is None or s.seen_utc < since_utc:
            continue
        d = math.dist(s.xy, other)
        if best is None or d < best[0]:
            best = (d, s.seen_utc)
    return best


def _progress_m(sightings: Sequence[Sighting], t0: datetime, t1: datetime, inward: XY) -> float | None:
    """How far the trail moved into the shop (along `inward`, metres) from `t0` to `t1` (its last sightings
    at or before those times); None when it has none at or before `t0`."""
    before = [s for s in sightings if s.seen_utc <= t0]
    after = [s for s in sightings if s.seen_utc <= t1]
    if not before or not after:
        return None
    a, b = before[-1].xy, after[-1].xy
    return (b[0] - a[0]) * inward[0] + (b[1] - a[1]) * inward[1]


def swap_partner(
    walked_out: Trail,
    came_in_utc: datetime,
    came_in_look: Float64Array | None,
    inward: XY,
    candidates: Iterable[Trail],
    looks_like: Callable[[TrackState, Float64Array | None], bool],
    looks_unlike: Callable[[TrackState, Float64Array | None], bool],
) -> int | None:
    """The track that follows on the person who came in at `came_in_utc` on the track that has walked
    back out now (`walked_out`), when the tracker swapped them with someone walking out the other way;
    None when it was no swap (they stepped straight back out).

    A swap: a candidate met the walked-out track (within `SWAP_MEET_M`, since `SWAP_LEAD_S` before
    `came_in_utc`) where it turned round: the walked-out track moved in until then and out since, the
    candidate out until then and in since (each at least `SWAP_TURN_M` along `inward`, the unit vector
    into the shop). With re-identification, no swap if the walked-out track still looks like
    `came_in_look` (the person who came in), and no candidate that looks like somebody else. The
    nearest meeting wins. Candidates on staff or off the floor are the caller's to leave out."""
    if looks_like(walked_out.track, came_in_look):
        return None
    since = came_in_utc - timedelta(seconds=SWAP_LEAD_S)
    now = walked_out.track.last_seen_utc
    best: tuple[float, int] | None = None
    for candidate in candidates:
        if candidate.track.track_id == walked_out.track.track_id or looks_unlike(
            candidate.track, came_in_look
        ):
            continue
        met = _meeting(walked_out, candidate, since)
        if met is None or met[0] > SWAP_MEET_M:
            continue
        dist, at = met
        moves = (
            _progress_m(walked_out.sightings, walked_out.sightings[0].seen_utc, at, inward),
            _progress_m(walked_out.sightings, at, now, inward),
            _progress_m(candidate.sightings, candidate.sightings[0].seen_utc, at, inward),
            _progress_m(candidate.sightings, at, candidate.track.last_seen_utc, inward),
        )
        if None in moves:
            continue
        in_before, out_since, cand_before, cand_since = (m for m in moves if m is not None)
        mirrored = (
            in_before >= SWAP_TURN_M
            and out_since <= -SWAP_TURN_M
            and cand_before <= -SWAP_TURN_M
            and cand_since >= SWAP_TURN_M
        )
        if mirrored and (best is None or (dist, candidate.track.track_id) < best):
            best = (dist, candidate.track.track_id)
    return None if best is None else best[1]
