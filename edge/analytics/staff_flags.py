"""Staff flags: which tracks follow staff members, excluded from every visitor metric and used for reception.

- A track is flagged staff when it is seen in a staff-only area, or when its torso matched the staff uniform
  (`staff_appearance`) in at least `min_observations` frames (the uniform cue is `edge.analytics.staff`).
- A flag stops a visit from starting; it never ends a visit already started, so a wrong flag cannot create
  or destroy a visit (the visit rules are in `edge.analytics.visits`).
- A flag goes out of the door with its track: whoever comes back in on it is judged afresh (the tracker may
  pick up someone else entering where they left, and staff coming back are flagged again by the staff-only
  areas or the uniform cue).
- A flag passes to a staff member's new track only when, with re-identification, the new track looks like
  them (`edge.tracking.relink`): on position alone it lands on visitors more often. A staff member whose
  track ended without such an heir is remembered for `lost_after_s`, so that their next track, once its look
  is known, is flagged again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from edge.analytics.door import DoorCounter, outside_doors
from edge.analytics.track_records import TrackRecord, TrackRecords
from edge.analytics.zones import Zone
from edge.config import StaffAppearance
from edge.tracking.base import Sighting, TrackState
from edge.tracking.relink import Relinker, StaffRelink


class StaffFlags:
    """Sets and clears the `staff` flag of track records, and remembers staff members whose track ended."""

    def __init__(
        self,
        appearance: StaffAppearance | None,
        areas: Sequence[Zone],
        doors: Sequence[DoorCounter],
        records: TrackRecords,
        relinker: Relinker,
    ) -> None:
        self.appearance = appearance
        self.areas = areas
        self.doors = doors
        self.records = records
        self.relinker = relinker
        self.lost: list[Sighting] = []
        """Staff members whose track ended, where and when last seen, oldest first."""

    def mark(self, tracks: Iterable[TrackState], uniform_tracks: frozenset[int]) -> list[int]:
        """Flag this step's observed tracks; returns the ids of those in a staff-only area (a visit on one
        of them lets go of it). `uniform_tracks`: the tracks whose torso matched the uniform now."""
        in_areas: list[int] = []
        for track in tracks:
            if not track.observed:
                continue
            record = self.records[track.track_id]
            if any(area.contains(track.xy_m) for area in self.areas):
                record.staff = True
                in_areas.append(track.track_id)
            elif not record.staff and record.visitor_id is None:
                # A staff member's new track is often recognised only once its look is known.
                found = self.returning(track, record.first_seen_utc)
                if found is not None:
                    self.take_over(found, track.track_id)
            if self.appearance is not None and track.track_id in uniform_tracks:
                record.uniform_votes += 1
                if record.uniform_votes >= self.appearance.min_observations:
                    record.staff = True
        return in_areas

    def returning(self, track: TrackState, born_utc: datetime) -> StaffRelink | None:
        """The lost staff member that `track` is, if any (never a track that starts beyond a door)."""
        if track.appearance is None or outside_doors(self.doors, track.first_xy_m):
            return None
        return self.relinker.staff_returning(track, born_utc, self.lost)

    def take_over(self, found: StaffRelink, track_id: int) -> None:
        """Track `track_id` is the lost staff member `found`: it is flagged, and they are lost no more."""
        self.records[track_id].staff = True
        del self.lost[found.index]

    def walked_out(self, record: TrackRecord) -> None:
        """The track crossed a door line outward: its flag goes with it."""
        record.staff = False
        record.uniform_votes = 0

    def track_ended(self, record: TrackRecord, alive: Iterable[TrackState]) -> None:
        """A staff member's track ended: the flag passes to a track started since that looks like them
        (an older one beside a staff member is usually a visitor they are serving), or they are lost."""
        last = record.last
        if not record.staff or last is None:
            return
        candidates = self.records.candidates(alive, lambda _, r: r.visitor_id is None and not r.staff)
        heir = self.relinker.staff_heir(last, candidates)
        if heir is not None:
            self.records[heir].staff = True
        else:
            self.lost.append(last)

    def expire(self, ts_utc: datetime) -> None:
        """Forget staff members lost longer than `lost_after_s`."""
        self.lost = [
            g for g in self.lost if (ts_utc - g.seen_utc).total_seconds() <= self.relinker.lost_after_s
        ]
