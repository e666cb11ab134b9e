"""The edge path after the detector: detections -> floor positions -> one track per person -> events.

`EdgePipeline.process` takes one time step's detections from every camera of the node (and, optionally, their
frames) and returns the contract events it produced, in this order:
1. `edge.floor.projection`: each camera's boxes to floor positions with covariance (`edge.floor.feet` stands
   boxes a display car cut short);
2. `edge.floor.fusion`: one floor detection per person across overlapping cameras (`edge.cues.appearance`
   embeds them when the tracker asks);
3. `edge.tracking`: floor tracks;
4. `edge.floor.overlay` and `edge.floor.feet` learn the tracks' box sizes and statures;
5. `edge.cues.uniform`: the ids of tracks wearing the staff uniform (only ids reach the analytics);
6. `edge.analytics`: events.

Bad input inside the frame loop never raises and never turns into a count: it is dropped and counted in
`stats` (boxes outside the image, foot points off the floor, a camera the configuration does not know, frames
whose size does not match the calibration, time going backwards). NaN boxes never get this far: `Detections`
refuses them where it is built, and its arrays are read-only. Input that degrades a camera's counts without
being wrong box by box (no detections for minutes, people off the floor plan, a crowd above the tracker's
capacity) is reported per camera by `degradation()`, which the heartbeat carries (`edge.degradation`).
Configuration problems (a camera without calibration, an inaccurate calibration, a zone no camera sees) raise
`ConfigError` when the pipeline is built.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt
from shapely import unary_union
from shapely.geometry import Polygon

from edge.analytics.showroom import ShowroomAnalytics
from edge.config import NodeConfig
from edge.cues.appearance import embed_on_request
from edge.cues.uniform import uniform_cue
from edge.degradation import CameraDegradation, ViewWatch
from edge.events import Envelope, EventStamper
from edge.floor.calibration import FloorProjection, calibrate_node, coverage_of
from edge.floor.feet import CutBoxRecovery, Feet
from edge.floor.fusion import fuse_cameras
from edge.floor.overlay import OverlayBoxes, OverlayRow
from edge.floor.projection import CameraFloor, FloorProjector
from edge.tracking import FloorDetections, Tracker, TrackState, make_tracker
from vision_models.detections import Detections

log = logging.getLogger(__name__)


@dataclass
class PipelineStats:
    """Counters of what the pipeline took in and what it had to reject (never silently dropped)."""

    steps: int = 0
    detections: int = 0
    detections_used: int = 0
    out_of_image_boxes: int = 0
    off_floor: int = 0
    backwards_timestamps: int = 0
    repeated_timestamps: int = 0
    unknown_cameras: int = 0
    resolution_mismatches: int = 0
    embedded_boxes: int = 0
    """Boxes the re-identification model embedded (on request of the tracker, within its budget)."""
    cut_boxes: int = 0
    """Boxes a display car cut short at the bottom (feet hidden), stood a full height below their top."""
    untracked: int = 0
    """Floor detections that started no track because the tracker was at capacity (a crowd)."""

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def rejected(self) -> int:
        return (
            self.out_of_image_boxes
            + self.off_floor
            + self.backwards_timestamps
            + self.unknown_cameras
            + self.resolution_mismatches
        )


class EdgePipeline:
    """One node's floor tracking and analytics. Deterministic for a seeded `IdSource` in the stamper."""

    def __init__(
        self,
        config: NodeConfig,
        stamper: EventStamper,
        tracker: Tracker | None = None,
        source: str = "<config>",
    ) -> None:
        self.config = config
        self.projections: dict[str, FloorProjection] = calibrate_node(config, source)
        self.coverage_m = coverage_of(self.projections.values(), config)
        self.tracker: Tracker = (
            tracker
            if tracker is not None
            else make_tracker(
                config.tracker,
                self.coverage_m,
                unary_union([Polygon(car.interior_zone_m) for car in config.cars]),
            )
        )
        self.analytics = ShowroomAnalytics(config, stamper)
        self.stats = PipelineStats()
        self.tracks: list[TrackState] = []
        """Confirmed tracks after the latest step (observed or briefly lost); for MOT output and overlays."""
        self.detections: dict[str, Detections] = {}
        """The latest step's detections per camera, as given (track `sources` index into these)."""
        self._cut_boxes = CutBoxRecovery(config.cars)
        self._floor = FloorProjector(config, self.projections, self._cut_boxes)
        self._overlay = OverlayBoxes()
        self._feet: dict[str, Feet] = {}
        """Per camera, where the latest step's boxes stand and what they show."""
        self._views: list[CameraFloor] = []
        self._watch = ViewWatch(self.projections)
        self._last_ts: datetime | None = None

    @property
    def occupancy(self) -> int:
        """Visitors on the floor now."""
        return self.analytics.occupancy

    @property
    def calibration_errors_m(self) -> dict[str, float]:
        """Per camera, the calibration's mean reprojection error on the floor, metres."""
        return {cid: round(p.error_m, 4) for cid, p in sorted(self.projections.items())}

    def degradation(self) -> dict[str, CameraDegradation]:
        """Per configured camera, whether its counts degrade now (no detections for minutes, people off
        the floor plan, a crowd above the tracker's capacity), as of its latest frame (`edge.degradation`)."""
        return self._watch.report()

    def observed_tracks(self, camera_id: str) -> list[OverlayRow]:
        """(track id, float32 xyxy box in the camera's pixels, score) of the confirmed tracks the camera sees
        now, with steady box sizes (`edge.floor.overlay`)."""
        det, feet = self.detections.get(camera_id), self._feet.get(camera_id)
        if det is None or feet is None:  # no track has a box from a camera not projected at this step
            return []
        return self._overlay.rows(self.tracks, det, feet, self.projections[camera_id])

    def process(
        self,
        ts_utc: datetime,
        detections_by_camera: dict[str, Detections],
        frames_by_camera: dict[str, npt.NDArray[np.uint8]] | None = None,
    ) -> list[Envelope]:
        """One time step: every camera's detections at `ts_utc` (UTC, aware); returns the events produced.

        `frames_by_camera` (optional, BGR uint8 images) feed the on-box staff uniform cue; nothing from them
        leaves this method.
        """
        step_ts = self._step_time(ts_utc)
        if step_ts is None:
            return []
        self.stats.steps += 1
        self.detections = dict(detections_by_camera)
        floor = self._to_floor(step_ts, detections_by_camera)
        step = self.tracker.update(step_ts, floor, self._floor.looked_at(detections_by_camera))
        self.tracks = step.tracks
        self._watch_views(step_ts, detections_by_camera, floor, step.untracked)
        self._overlay.learn(self.tracks, self.detections, self._feet, self.projections)
        self._cut_boxes.learn(self.tracks, self._feet, self.projections)
        uniform = uniform_cue(
            step.tracks, self.detections, frames_by_camera or {}, self.config.staff_appearance
        )
        return self.analytics.step(step_ts, step, uniform)

    def flush(self, ts_utc: datetime, reason: Literal["shutdown", "lost"] = "shutdown") -> list[Envelope]:
        """End every open visit with `reason` and send the heat of the minute in progress."""
        if reason not in ("shutdown", "lost"):
            raise ValueError(f"reason must be 'shutdown' or 'lost', got {reason!r}")
        self.tracker.close()
        self.tracks = []
        if self._last_ts is not None and ts_utc < self._last_ts:
            ts_utc = self._last_ts
        return self.analytics.flush(ts_utc, reason)

    def _step_time(self, ts_utc: datetime) -> datetime | None:
        """The step's time: None (counted) when it goes back before the previous step; a repeat of it is
        taken a millisecond later."""
        if ts_utc.tzinfo is None:
            raise ValueError("ts_utc must be time-zone aware (UTC)")
        if self._last_ts is not None and ts_utc < self._last_ts:
            self.stats.backwards_timestamps += 1
            log.warning("dropped a step at %s: before the previous step %s", ts_utc, self._last_ts)
            return None
        if self._last_ts is not None and ts_utc == self._last_ts:
            # A second batch at the same instant (cameras whose clocks agree to the tick): it happened
            # just after the first, so it is taken a millisecond later rather than dropped.
            self.stats.repeated_timestamps += 1
            ts_utc = ts_utc + timedelta(milliseconds=1)
        self._last_ts = ts_utc
        return ts_utc

    def _watch_views(
        self,
        ts_utc: datetime,
        detections_by_camera: dict[str, Detections],
        floor: FloorDetections,
        untracked: tuple[int, ...],
    ) -> None:
        """Tell the view watch what each camera's boxes became at this step."""
        self.stats.untracked += len(untracked)
        untracked_by_camera: dict[str, int] = {}
        for j in untracked:
            for camera_id in floor.sources[j]:
                untracked_by_camera[camera_id] = untracked_by_camera.get(camera_id, 0) + 1
        for view in self._views:
            self._watch.observe(
                ts_utc,
                view.camera_id,
                boxes=len(detections_by_camera[view.camera_id]),
                on_floor=len(view.index),
                off_floor=view.off_floor,
                untracked=untracked_by_camera.get(view.camera_id, 0),
            )

    def _to_floor(self, ts_utc: datetime, detections_by_camera: dict[str, Detections]) -> FloorDetections:
        views: list[CameraFloor] = []
        self._views = views
        self._feet = {}
        for camera_id in sorted(detections_by_camera):
            det = detections_by_camera[camera_id]
            self.stats.detections += len(det)
            projection = self._calibrated(camera_id, det)
            if projection is None:
                continue
            view = self._floor.project(projection, det, self.tracks, ts_utc)
            self._feet[camera_id] = view.feet
            self.stats.out_of_image_boxes += view.out_of_image_boxes
            self.stats.cut_boxes += int(view.feet.cut.sum())
            self.stats.off_floor += view.off_floor
            self.stats.detections_used += len(view.index)
            views.append(view)
        floor = fuse_cameras(views, self.config.tracker.fuse_radius_m)
        if not len(floor) or self.config.tracker.reid is None:
            return floor
        embed = embed_on_request(floor, detections_by_camera, self._embedded)
        return floor if embed is None else replace(floor, embed=embed)

    def _calibrated(self, camera_id: str, det: Detections) -> FloorProjection | None:
        """The camera's projection; None (counted) for a camera the configuration does not know or a frame
        whose size is not the calibration's."""
        projection = self.projections.get(camera_id)
        if projection is None:
            self.stats.unknown_cameras += 1
            log.warning("detections from camera %r, which the configuration does not know", camera_id)
            return None
        if projection.resolution_wh is not None and tuple(det.resolution_wh) != projection.resolution_wh:
            self.stats.resolution_mismatches += 1
            log.warning(
                "camera %s: frame is %s but its calibration is for %s; frame skipped",
                camera_id,
                det.resolution_wh,
                projection.resolution_wh,
            )
            return None
        return projection

    def _embedded(self, boxes: int) -> None:
        self.stats.embedded_boxes += boxes
