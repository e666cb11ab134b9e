"""What the analytics keep about each confirmed track, in one record per track, forgotten in one place.

A record is made when the analytics first see a track and dropped when the tracker ends it (the tracker
never reuses an id) or when the node flushes (the tracker starts afresh).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from edge.tracking.base import Sighting, TrackState
from edge.tracking.doorway import SWAP_LEAD_S, SWAP_WINDOW_S, Trail
from edge.tracking.relink import Candidate

TRAIL_S = SWAP_WINDOW_S + SWAP_LEAD_S
"""How long a track's sightings are kept (its trail, for telling a swap in a doorway from a step back)."""


@dataclass
class TrackRecord:
    """One track's state in the analytics.

    Attributes:
        first_seen_utc: the step at which the analytics first saw the track.
        last: its latest observation (None until observed).
        staff: flagged staff (staff-only area, uniform cue, or a staff member's track continued).
        uniform_votes: frames in which its torso matched the staff uniform.
        continues_another: it continues an ended track for the door lines (it continues at most one).
        visitor_id: the visit it is on, if any (the visit's `track_id` points back at it).
        trail: its observed sightings of the last `TRAIL_S` seconds, oldest first.
    """

    first_seen_utc: datetime
    last: Sighting | None = None
    staff: bool = False
    uniform_votes: int = 0
    continues_another: bool = False
    visitor_id: str | None = None
    trail: deque[Sighting] = field(default_factory=deque)


class TrackRecords:
    """The records of the tracks alive in the analytics, by track id."""

    def __init__(self) -> None:
        self._by_id: dict[int, TrackRecord] = {}

    def __getitem__(self, track_id: int) -> TrackRecord:
        return self._by_id[track_id]

    def __iter__(self) -> Iterator[TrackRecord]:
        return iter(self._by_id.values())

    def get(self, track_id: int) -> TrackRecord | None:
        return self._by_id.get(track_id)

    def first_sight(self, track_id: int, ts_utc: datetime) -> bool:
        """Make a record for a track not seen before (True), or leave a known one as it is (False)."""
        if track_id in self._by_id:
            return False
        self._by_id[track_id] = TrackRecord(ts_utc)
        return True

    def note_sightings(self, tracks: Iterable[TrackState]) -> None:
        """Keep each observed track's latest position, time and appearance."""
        for track in tracks:
            if track.observed:
                record = self._by_id[track.track_id]
                record.last = Sighting(track.xy_m, track.last_seen_utc, track.appearance)
                record.trail.append(record.last)
                keep_from = track.last_seen_utc - timedelta(seconds=TRAIL_S)
                while record.trail[0].seen_utc < keep_from:
                    record.trail.popleft()

    def end(self, track_id: int) -> TrackRecord | None:
        """Forget an ended track; returns its record (None if it was never seen)."""
        return self._by_id.pop(track_id, None)

    def clear(self) -> None:
        self._by_id.clear()

    def is_staff(self, track_id: int) -> bool:
        record = self._by_id.get(track_id)
        return record is not None and record.staff

    def visitor_of(self, track_id: int) -> str | None:
        record = self._by_id.get(track_id)
        return None if record is None else record.visitor_id

    def counts_as_staff(self, track_id: int) -> bool:
        """Staff for reception and heat: flagged, and not on a visit (a wrong flag changes no visit)."""
        record = self._by_id.get(track_id)
        return record is not None and record.staff and record.visitor_id is None

    def trails(
        self, alive: Iterable[TrackState], allowed: Callable[[TrackState, TrackRecord], bool]
    ) -> list[Trail]:
        """The alive tracks with a record and a trail that `allowed` lets in, with their trails."""
        out: list[Trail] = []
        for track in alive:
            record = self._by_id.get(track.track_id)
            if record is not None and record.trail and allowed(track, record):
                out.append(Trail(track, tuple(record.trail)))
        return out

    def candidates(
        self, alive: Iterable[TrackState], allowed: Callable[[TrackState, TrackRecord], bool]
    ) -> list[Candidate]:
        """The alive tracks with a record that `allowed` lets take over a lost person, in the given order."""
        out: list[Candidate] = []
        for track in alive:
            record = self._by_id.get(track.track_id)
            if record is not None and allowed(track, record):
                out.append(Candidate(track, record.first_seen_utc))
        return out
