"""Showroom analytics: confirmed floor tracks and time in, contract events out.

Pure: state in, events out; no clock reads, no I/O. Time comes only from the `ts_utc` of each step, so a
recorded video replays to the same events. This module composes the parts, each owning its rules:
door lines (`door`), the visit lifecycle (`visits`), per-visit dwell, car entries and reception
(`visit_metrics`, `zones`, `reception`), staff flags (`staff_flags`), heat (`heat`), each track's state
(`track_records`), and tracks continuing lost people (`continuity`, deciding with `edge.tracking.relink`).
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from typing import Literal

from shapely.geometry import Point

from edge.analytics.continuity import TrackContinuity
from edge.analytics.door import Direction, DoorCounter, outside_doors
from edge.analytics.handover import Handover
from edge.analytics.heat import HeatGrid, heat_event
from edge.analytics.staff_flags import StaffFlags
from edge.analytics.track_records import TrackRecords
from edge.analytics.visit_metrics import VisitMetrics
from edge.analytics.visits import Visit, Visits
from edge.analytics.zones import CarZones, Zone
from edge.config import NodeConfig
from edge.events import Envelope, EventStamper
from edge.store_areas import BoxLayout
from edge.tracking.base import TrackerStep, TrackState
from edge.tracking.relink import Relinker
from vision_models.arrays import XY


class ShowroomAnalytics:
    """All of one node's analytics; `step` once per time step with the tracker's confirmed tracks."""

    def __init__(self, config: NodeConfig, stamper: EventStamper) -> None:
        self.config = config
        self.stamper = stamper
        self.thresholds = config.thresholds
        layout = None
        if config.floor.areas:
            areas = [(a.node_id, a.polygon_m) for a in config.floor.areas]
            layout = BoxLayout.of(config.node_id, areas, config.floor.overlap_m)
        # In a store of several boxes, each box counts the doors in its own area (a door in the strip is
        # seen by both: one starts the visit).
        self.doors = [DoorCounter(d) for d in config.doors if layout is None or layout.holds_line(d.line_m)]
        # ... but where the floor ends is every door of the store: a box's cameras see the street past a
        # neighbour's door too, and nobody out there is a visitor handed over, lost or walking on.
        counted = {d.door.id for d in self.doors}
        self.store_doors = self.doors + [DoorCounter(d) for d in config.doors if d.id not in counted]
        self.cars = [
            CarZones(c.id, Zone(c.browse_zone_m), Zone(c.interior_zone_m), [Zone(a) for a in c.door_areas_m])
            for c in config.cars
        ]
        self.staff_areas = [Zone(a.polygon_m) for a in config.staff_areas]
        self.heat = HeatGrid(config.floor.size_m, config.thresholds.heat_cell_m)
        self.crossings: Counter[tuple[str, Direction]] = Counter()
        self.steps = 0
        self.rejected_steps = 0
        """Steps whose time was not after the previous step's (dropped)."""
        self.rejected_tracks = 0
        """Track states with a NaN or infinite position (dropped)."""
        self._last_ts: datetime | None = None
        reid = config.tracker.reid
        same_person = reid.same_person_distance if reid is not None else math.inf
        self._relinker = Relinker(same_person, self.thresholds.lost_after_s)
        self._tracks = TrackRecords()
        metrics = VisitMetrics(self.thresholds, self.cars, stamper)
        self._visits = Visits(
            self.thresholds, stamper, self._tracks, self.store_doors, self._relinker, metrics
        )
        self._staff = StaffFlags(
            config.staff_appearance, self.staff_areas, self.store_doors, self._tracks, self._relinker
        )
        self._continuity = TrackContinuity(
            self.doors,
            self.cars,
            self._tracks,
            self._visits,
            self._staff,
            self._relinker,
            outside=self.store_doors,
        )
        self.handover: Handover | None = None
        """A store served by several boxes (`floor.areas`): visits handed over at the boundaries."""
        if layout is not None:
            self.handover = Handover(
                layout, config.store_id, self._visits, self._tracks, stamper.ids, self.store_doors
            )

    @property
    def visits(self) -> dict[str, Visit]:
        """The open visits by visitor id, in order of start."""
        return self._visits.open

    @property
    def occupancy(self) -> int:
        """Visitors on the floor now: visits started and not ended (staff excluded)."""
        return self._visits.occupancy

    def is_staff(self, track_id: int) -> bool:
        return self._tracks.is_staff(track_id)

    def visitor_of(self, track_id: int) -> str | None:
        """The visitor id of the visit this track is on, if any (never sent: for overlays and diagnosis)."""
        return self._tracks.visitor_of(track_id)

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
        done = self.heat.roll(ts_utc)
        if done is not None:
            out.append(heat_event(self.stamper, self.heat.cell_m, done, HeatGrid.minute_end(done[0])))
        for track in tracks.tracks:
            if self._tracks.first_sight(track.track_id, ts_utc):
                self._continuity.track_started(track)
        self._tracks.note_sightings(tracks.tracks)
        for track_id in self._staff.mark(tracks.tracks, uniform_tracks):
            self._visits.let_go(track_id)
        self._visits.drop_staff_entries()
        for track in tracks.tracks:
            if track.observed:
                out += self._doors(ts_utc, track, tracks.tracks)
        out += self._visits.confirm(ts_utc)
        staff_xy = [t.xy_m for t in tracks.tracks if t.observed and self._tracks.counts_as_staff(t.track_id)]
        out += self._visits.step(ts_utc, {t.track_id: t for t in tracks.tracks}, staff_xy)
        for track_id in tracks.ended:
            if self.handover is not None:
                self.handover.track_ending(track_id)
            self._continuity.track_ended(track_id, tracks.tracks)
        if self.handover is not None:
            out += self.handover.step(ts_utc, tracks.tracks)
        out += self._visits.expire_lost(ts_utc)
        self._staff.expire(ts_utc)
        for track in tracks.tracks:
            if not self._tracks.counts_as_staff(track.track_id) and self._heat_here(track.xy_m):
                self.heat.add(track.xy_m, dt)
        self.heat.note_occupancy(self.occupancy)
        return out

    def flush(self, ts_utc: datetime, reason: Literal["shutdown", "lost"] = "shutdown") -> list[Envelope]:
        """End every open visit with `reason` and send the heat of the minute in progress."""
        if self.handover is not None:
            self.handover.flush()
        out = self._visits.flush(ts_utc, reason)
        # The tracker starts afresh after a flush: forget every track.
        for door in self.doors:
            door.forget_all()
        self._tracks.clear()
        self._staff.lost.clear()
        done = self.heat.take()
        if done is not None:
            out.append(heat_event(self.stamper, self.heat.cell_m, done, max(ts_utc, done[0])))
        return out

    def _heat_here(self, xy_m: XY) -> bool:
        """Heat is counted inside the doors and, in a store of several boxes, in this box's own area."""
        if outside_doors(self.store_doors, xy_m):
            return False
        return self.handover is None or bool(self.handover.layout.area.contains(Point(xy_m)))

    def _finite(self, step: TrackerStep) -> TrackerStep:
        good = [t for t in step.tracks if math.isfinite(t.xy_m[0]) and math.isfinite(t.xy_m[1])]
        if len(good) == len(step.tracks):
            return step
        self.rejected_tracks += len(step.tracks) - len(good)
        return TrackerStep(good, step.ended)

    def _doors(self, ts_utc: datetime, track: TrackState, alive: list[TrackState]) -> list[Envelope]:
        out: list[Envelope] = []
        for door in self.doors:
            direction = door.observe(track.track_id, track.xy_m, track.first_xy_m)
            if direction is None:
                continue
            self.crossings[(door.door.id, direction)] += 1
            if direction == "out":
                self._staff.walked_out(self._tracks[track.track_id])
            out += self._visits.crossed(ts_utc, track, door, direction, alive)
        return out
