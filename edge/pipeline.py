"""The edge path after the detector: project to the floor, fuse cameras, track, run the analytics.

`EdgePipeline.process` takes one time step's detections from every camera of the node and returns the
contract events it produced. A person stands where their box's bottom edge meets the floor, unless a display
car cut the box at its roof line: such a box is told by its height (shorter than the person whose head it
matches, or than the camera's typical person) and stood a full height below its top.

Bad input inside the frame loop never raises and never turns into a count: it is dropped and counted in
`stats` (NaN boxes, boxes outside the image, foot points off the floor, a camera the configuration does not
know, frames whose size does not match the calibration, time going backwards).
Configuration problems (a camera without calibration, an inaccurate calibration, a zone no camera sees) raise
`ConfigError` when the pipeline is built.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
from shapely import unary_union
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from edge.analytics.showroom import ShowroomAnalytics
from edge.config import NodeConfig
from edge.cues.uniform import uniform_cue
from edge.events import Envelope, EventStamper
from edge.floor.calibration import FloorProjection, calibrate_node, coverage_of, metres_per_px_scale
from edge.tracking import FloorDetections, Tracker, TrackState, make_tracker
from edge.tracking.base import EmbedFn
from vision_models.detections import Detections

log = logging.getLogger(__name__)

OFF_FLOOR_MARGIN_M = 5.0
"""Foot points this far outside the floor plan are kept (people just outside a door must be tracked to
count them coming in); further out they are not on this floor."""
IMAGE_MARGIN_PX = 2.0
BOX_SIZE_SMOOTHING = 0.4
"""Weight of the newest detection in a track's box size (exponential smoothing), for MOT output."""
FLOOR_NOISE_M = 0.05
"""Floor-position uncertainty that remains however close the person is (calibration, posture)."""
CUT_BOX_RATIO = 0.85
"""A box ending on a display car that is shorter than this share of its person's expected height has its
feet hidden behind the car: its foot point is placed a full height below its top."""
TYPICAL_STATURE_BOXES = 500
"""How many of a camera's latest whole boxes make its typical person."""
OCCLUDER_SCALE = 4
"""Car silhouettes are drawn at this fraction of the image resolution."""
OCCLUDER_MARGIN_PX = 12
"""How far outside a car's silhouette a box's bottom edge may lie and still be taken to end on the car."""
ROOF_MARGIN_M = 0.3
"""Silhouettes reach this much above a car's configured roof height (a taller car than configured, a roof
box): a box cut at the real roof line must still count as ending on the car, or it would teach its person a
stature that is too short."""
CUT_BOX_GATE = 0.25
"""How far a box's top may lie from where a track's head is expected, in the track's full heights, for the
box to be judged against that track's height."""
CUT_BOX_NOISE = 0.1
"""Uncertainty of a foot point placed from the top of a cut box, in full heights (posture, stride)."""


@dataclass(frozen=True)
class _Feet:
    """One camera's boxes at one time step: where each stands in the image, and what it shows."""

    row_px: npt.NDArray[np.float64]
    """The image row the person stands on: the box's bottom edge, or below it when a car cut the box."""
    cut: npt.NDArray[np.bool_]
    """Cut short at the bottom by a car."""
    whole: npt.NDArray[np.bool_]
    """Shows the whole person: head and feet inside the image, feet clear of every car."""
    stature: npt.NDArray[np.float64]
    """Box height (to `row_px`) times the floor's metres per pixel there: nearly constant per person."""


@dataclass
class PipelineStats:
    """Counters of what the pipeline took in and what it had to reject (never silently dropped)."""

    steps: int = 0
    detections: int = 0
    detections_used: int = 0
    nan_boxes: int = 0
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

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def rejected(self) -> int:
        return (
            self.nan_boxes
            + self.out_of_image_boxes
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
        self._last_ts: datetime | None = None
        self._box_wh: dict[tuple[int, str], tuple[float, float]] = {}
        """Per (track, camera): the smoothed box size, its height not from boxes a car cut short."""
        self._feet: dict[str, _Feet] = {}
        """Per camera, where this step's boxes stand and what they show."""
        self._stature: dict[tuple[int, str], float] = {}
        """Per (track, camera): the person's stature (box height times the floor's metres per pixel at their
        feet), nearly constant as they walk, so their box height can be foreseen anywhere in the image."""
        self._statures_seen: dict[str, deque[float]] = {}
        """Per camera, the statures of the latest whole boxes: the typical person, for a box cut by a car
        that no known track's head explains (someone who walked in behind a car)."""
        self._occluders: dict[tuple[str, tuple[int, int]], npt.NDArray[np.bool_] | None] = {}
        self._looked_at_cache: dict[frozenset[str], BaseGeometry | None] = {}
        size_x, size_y = config.floor.size_m
        self._floor_bounds = (
            -OFF_FLOOR_MARGIN_M,
            -OFF_FLOOR_MARGIN_M,
            size_x + OFF_FLOOR_MARGIN_M,
            size_y + OFF_FLOOR_MARGIN_M,
        )

    # ---------------------------------------------------------------------------------------------

    @property
    def occupancy(self) -> int:
        """Visitors on the floor now."""
        return self.analytics.occupancy

    @property
    def calibration_errors_m(self) -> dict[str, float]:
        """Per camera, the calibration's mean reprojection error on the floor, metres."""
        return {cid: round(p.error_m, 4) for cid, p in sorted(self.projections.items())}

    def observed_tracks(self, camera_id: str) -> list[tuple[int, npt.NDArray[np.float32], float]]:
        """(track id, xyxy box in the camera's pixels, score) of confirmed tracks the camera sees now.

        The box stands on the matched detection's anchor point (feet, or where the feet are when the box
        was cut short; or its centre) with the track's smoothed size, so it does not breathe with the
        detector's frame-to-frame size jitter.
        """
        det = self.detections.get(camera_id)
        if det is None:
            return []
        rows = []
        for track in self.tracks:
            index = track.sources.get(camera_id)
            size = self._box_wh.get((track.track_id, camera_id))
            if track.observed and index is not None and size is not None:
                rows.append((track.track_id, self._box(camera_id, index, size), float(det.confidence[index])))
        return rows

    def _box(self, camera_id: str, index: int, size: tuple[float, float]) -> npt.NDArray[np.float32]:
        xyxy = self.detections[camera_id].xyxy[index]
        w, h = size
        cx = (float(xyxy[0]) + float(xyxy[2])) / 2
        if self.projections[camera_id].anchor == "bottom_center":
            y2 = float(self._feet[camera_id].row_px[index])
            return np.array([cx - w / 2, y2 - h, cx + w / 2, y2], dtype=np.float32)
        cy = (float(xyxy[1]) + float(xyxy[3])) / 2
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float32)

    def _learn_box_sizes(self) -> None:
        """Per track and camera, the smoothed box size (for overlays; its height not from boxes a car cut)
        and the person's stature (to tell a box cut by a car; only from boxes that show them whole)."""
        sizes: dict[tuple[int, str], tuple[float, float]] = {}
        statures: dict[tuple[int, str], float] = {}
        a = BOX_SIZE_SMOOTHING
        for track in self.tracks:
            for camera_id, index in track.sources.items():
                x1, y1, x2, y2 = (float(v) for v in self.detections[camera_id].xyxy[index])
                key = (track.track_id, camera_id)
                old_size, old_stature = self._box_wh.get(key), self._stature.get(key)
                feet = self._feet[camera_id]
                whole = bool(feet.whole[index])
                if old_size is None:
                    sizes[key] = (x2 - x1, y2 - y1)
                else:
                    h = old_size[1] if feet.cut[index] else a * (y2 - y1) + (1 - a) * old_size[1]
                    sizes[key] = (a * (x2 - x1) + (1 - a) * old_size[0], h)
                if whole:
                    stature = float(feet.stature[index])
                    self._statures_seen.setdefault(camera_id, deque(maxlen=TYPICAL_STATURE_BOXES)).append(
                        stature
                    )
                    statures[key] = stature if old_stature is None else a * stature + (1 - a) * old_stature
                elif old_stature is not None:
                    statures[key] = old_stature
            for camera_id in self.projections:
                key = (track.track_id, camera_id)
                if key not in sizes and key in self._box_wh:
                    sizes[key] = self._box_wh[key]
                if key not in statures and key in self._stature:
                    statures[key] = self._stature[key]
        self._box_wh, self._stature = sizes, statures

    def process(
        self,
        ts_utc: datetime,
        detections_by_camera: dict[str, Detections],
        frames_by_camera: dict[str, npt.NDArray[np.uint8]] | None = None,
    ) -> list[Envelope]:
        """One time step: every camera's detections at `ts_utc` (UTC, aware); returns the events produced.

        `frames_by_camera` (optional, BGR images) feed the on-box staff uniform cue; nothing from them
        leaves this method.
        """
        if ts_utc.tzinfo is None:
            raise ValueError("ts_utc must be time-zone aware (UTC)")
        if self._last_ts is not None and ts_utc < self._last_ts:
            self.stats.backwards_timestamps += 1
            log.warning("dropped a step at %s: before the previous step %s", ts_utc, self._last_ts)
            return []
        if self._last_ts is not None and ts_utc == self._last_ts:
            # A second batch at the same instant (cameras whose clocks agree to the tick): it happened
            # just after the first, so it is taken a millisecond later rather than dropped.
            self.stats.repeated_timestamps += 1
            ts_utc = ts_utc + timedelta(milliseconds=1)
        self._last_ts = ts_utc
        self.stats.steps += 1
        self.detections = dict(detections_by_camera)
        floor = self._to_floor(ts_utc, detections_by_camera)
        step = self.tracker.update(ts_utc, floor, self._looked_at(detections_by_camera))
        self.tracks = step.tracks
        self._learn_box_sizes()
        uniform = uniform_cue(
            step.tracks, self.detections, frames_by_camera or {}, self.config.staff_appearance
        )
        return self.analytics.step(ts_utc, step, uniform)

    def flush(self, ts_utc: datetime, reason: Literal["shutdown", "lost"] = "shutdown") -> list[Envelope]:
        """End every open visit with `reason` and send the heat of the minute in progress."""
        if reason not in ("shutdown", "lost"):
            raise ValueError(f"reason must be 'shutdown' or 'lost', got {reason!r}")
        self.tracker.close()
        self.tracks = []
        if self._last_ts is not None and ts_utc < self._last_ts:
            ts_utc = self._last_ts
        return self.analytics.flush(ts_utc, reason)

    # ---------------------------------------------------------------------------------------------

    def _to_floor(self, ts_utc: datetime, detections_by_camera: dict[str, Detections]) -> FloorDetections:
        xy: list[npt.NDArray[np.float64]] = []
        cov: list[npt.NDArray[np.float64]] = []
        score: list[npt.NDArray[np.float64]] = []
        sources: list[dict[str, int]] = []
        self._feet = {}
        for camera_id in sorted(detections_by_camera):
            det = detections_by_camera[camera_id]
            self.stats.detections += len(det)
            projection = self.projections.get(camera_id)
            if projection is None:
                self.stats.unknown_cameras += 1
                log.warning("detections from camera %r, which the configuration does not know", camera_id)
                continue
            if projection.resolution_wh is not None and tuple(det.resolution_wh) != projection.resolution_wh:
                self.stats.resolution_mismatches += 1
                log.warning(
                    "camera %s: frame is %s but its calibration is for %s; frame skipped",
                    camera_id,
                    det.resolution_wh,
                    projection.resolution_wh,
                )
                continue
            keep, floor_xy, floor_cov = self._project_camera(projection, det, ts_utc)
            index = np.flatnonzero(keep)
            xy.append(floor_xy[index])
            cov.append(floor_cov[index])
            score.append(det.confidence[index].astype(np.float64))
            sources += [{camera_id: int(i)} for i in index]
        if not sources:
            return FloorDetections.empty()
        floor = _fuse(
            np.concatenate(xy),
            np.concatenate(cov),
            np.concatenate(score),
            sources,
            self.config.tracker.fuse_radius_m,
        )
        embed = self._embedder(floor, detections_by_camera)
        return floor if embed is None else replace(floor, embed=embed)

    def _embedder(
        self, floor: FloorDetections, detections_by_camera: dict[str, Detections]
    ) -> EmbedFn | None:
        """Appearance of floor detections on request: each from the camera that sees the person largest
        (of those with an appearance model). None when re-identification is off or no camera has one."""
        if self.config.tracker.reid is None:
            return None
        cameras = {c: d for c, d in detections_by_camera.items() if d.appearance is not None}
        if not cameras:
            return None

        def embed(indices: Sequence[int]) -> npt.NDArray[np.float64]:
            wanted: dict[str, list[tuple[int, int]]] = {}
            for k, j in enumerate(indices):
                views = [(c, i) for c, i in floor.sources[j].items() if c in cameras]
                if views:
                    c, i = max(views, key=lambda v: float(np.ptp(cameras[v[0]].xyxy[v[1], 1::2])))
                    wanted.setdefault(c, []).append((k, i))
            rows: dict[int, npt.NDArray[np.float64]] = {}
            for c, pairs in wanted.items():
                appearance = cameras[c].appearance
                assert appearance is not None
                got = np.asarray(appearance(np.array([i for _, i in pairs], dtype=np.intp)), dtype=np.float64)
                rows.update({k: got[n] for n, (k, _) in enumerate(pairs)})
                self.stats.embedded_boxes += len(pairs)
            dim = next((len(r) for r in rows.values()), 1)
            out = np.full((len(indices), dim), np.nan)
            for k, row in rows.items():
                out[k] = row
            return out

        return embed

    def _project_camera(
        self, projection: FloorProjection, det: Detections, ts_utc: datetime
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        xyxy = det.xyxy.astype(np.float64)
        finite = np.isfinite(xyxy).all(axis=1) & np.isfinite(det.confidence)
        self.stats.nan_boxes += int((~finite).sum())
        xyxy = np.where(finite[:, None], xyxy, 0.0)
        w, h = det.resolution_wh
        x_mid = (xyxy[:, 0] + xyxy[:, 2]) / 2
        y_anchor = xyxy[:, 3] if projection.anchor == "bottom_center" else (xyxy[:, 1] + xyxy[:, 3]) / 2
        inside = (
            (x_mid >= -IMAGE_MARGIN_PX)
            & (x_mid <= w + IMAGE_MARGIN_PX)
            & (y_anchor >= -IMAGE_MARGIN_PX)
            & (y_anchor <= h + IMAGE_MARGIN_PX)
        )
        bad_box = finite & (~inside | (xyxy[:, 2] < xyxy[:, 0]) | (xyxy[:, 3] < xyxy[:, 1]))
        self.stats.out_of_image_boxes += int(bad_box.sum())
        y_foot, cut = y_anchor, np.zeros(len(xyxy), dtype=bool)
        whole = np.zeros(len(xyxy), dtype=bool)
        if projection.anchor == "bottom_center":
            y_foot, cut, whole = self._stand(projection, det.resolution_wh, xyxy, finite & ~bad_box, ts_utc)
            self.stats.cut_boxes += int(cut.sum())
        anchors = np.stack([x_mid, y_foot], axis=1)
        floor_xy, on_floor = projection.to_floor(anchors)
        x0, y0, x1, y1 = self._floor_bounds
        with np.errstate(invalid="ignore"):
            on_floor &= (
                (floor_xy[:, 0] >= x0)
                & (floor_xy[:, 0] <= x1)
                & (floor_xy[:, 1] >= y0)
                & (floor_xy[:, 1] <= y1)
            )
        usable = finite & ~bad_box
        self.stats.off_floor += int((usable & ~on_floor).sum())
        keep = usable & on_floor
        jac = projection.metres_per_pixel(anchors)
        height_px = y_foot - xyxy[:, 1] if projection.anchor == "bottom_center" else xyxy[:, 3] - xyxy[:, 1]
        stature = height_px * metres_per_px_scale(jac)
        self._feet[projection.camera_id] = _Feet(y_foot, cut, whole, stature)
        noise = np.where(
            cut, np.hypot(self.config.tracker.box_noise, CUT_BOX_NOISE), self.config.tracker.box_noise
        )
        sigma_px = np.maximum(noise * height_px, 1.0)
        cov = (jac @ jac.transpose(0, 2, 1)) * (sigma_px**2)[:, None, None]
        cov[:, 0, 0] += FLOOR_NOISE_M**2
        cov[:, 1, 1] += FLOOR_NOISE_M**2
        self.stats.detections_used += int(keep.sum())
        if not keep.all():  # rows off the floor (NaN there) are dropped by the caller; keep arrays finite
            floor_xy, cov = np.nan_to_num(floor_xy), np.nan_to_num(cov)
        return keep, floor_xy, cov

    def _stand(
        self,
        projection: FloorProjection,
        resolution_wh: tuple[int, int],
        xyxy: npt.NDArray[np.float64],
        usable: npt.NDArray[np.bool_],
        ts_utc: datetime,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Per box: the image row its person stands on, whether the box was cut short by a car, and
        whether it shows the whole person.

        An oblique camera sees people over the display cars: someone behind a car from its view is boxed
        down to the car's roof line, and that box's bottom edge projects onto the floor beyond them. A box
        whose bottom edge ends on a car's silhouette is matched by its top to where a known track's head
        should be in this camera (the track's floor position, moved on by its velocity, and its stature).
        When it is clearly shorter than that track's height there, and the feet a full height below its
        top would be hidden by the car, the person stands there. Only boxes whose feet are clear of every
        car, with head and feet inside the image, teach a track its stature.
        """
        foot = xyxy[:, 3].copy()
        cut = np.zeros(len(xyxy), dtype=bool)
        _, height = resolution_wh
        head_in = usable & (xyxy[:, 1] > IMAGE_MARGIN_PX)
        in_frame = head_in & (xyxy[:, 3] < height - IMAGE_MARGIN_PX)
        occluders = self._occluder_mask(projection, resolution_wh)
        if occluders is None:
            return foot, cut, in_frame
        on_car = self._on_mask(occluders, (xyxy[:, 0] + xyxy[:, 2]) / 2, xyxy[:, 3])
        whole = in_frame & ~on_car
        candidates = np.flatnonzero(head_in & on_car)
        if not len(candidates):
            return foot, cut, whole
        camera_id = projection.camera_id
        heads = []
        for track in self.tracks:
            known = self._stature.get((track.track_id, camera_id))
            if known is None:
                continue
            since_s = min((ts_utc - track.last_seen_utc).total_seconds(), 1.0)
            heads.append((*track.xy_m, *track.velocity_mps, since_s, known))
        if not heads:
            self._typical_feet(projection, occluders, xyxy, candidates, foot, cut)
            return foot, cut, whole
        x, y, vx, vy, ahead_s, stature = np.array(heads, dtype=np.float64).T
        feet_px = projection.to_image(np.stack([x + vx * ahead_s, y + vy * ahead_s], axis=1))
        full = stature * projection.px_per_metre(feet_px)
        box = xyxy[candidates]
        top_u, top_v = (box[:, 0] + box[:, 2]) / 2, box[:, 1]
        apart = np.hypot(
            top_u[:, None] - feet_px[None, :, 0], top_v[:, None] - (feet_px[:, 1] - full)[None, :]
        )
        apart /= full[None, :]
        taken_box, taken_head = set(), set()
        for flat in np.argsort(apart, axis=None):
            i, j = divmod(int(flat), apart.shape[1])
            if apart[i, j] > CUT_BOX_GATE:
                break
            if i in taken_box or j in taken_head:
                continue
            taken_box.add(i)
            taken_head.add(j)
            feet_v = box[i, 1] + full[j]
            if (
                box[i, 3] - box[i, 1] < CUT_BOX_RATIO * full[j]
                and self._on_mask(occluders, np.array([top_u[i]]), np.array([feet_v]))[0]
            ):
                foot[candidates[i]] = feet_v
                cut[candidates[i]] = True
        unexplained = np.array([candidates[i] for i in range(len(candidates)) if i not in taken_box], np.intp)
        self._typical_feet(projection, occluders, xyxy, unexplained, foot, cut)
        return foot, cut, whole

    def _typical_feet(
        self,
        projection: FloorProjection,
        occluders: npt.NDArray[np.bool_],
        xyxy: npt.NDArray[np.float64],
        rows: npt.NDArray[np.intp],
        foot: npt.NDArray[np.float64],
        cut: npt.NDArray[np.bool_],
    ) -> None:
        """Boxes ending on a car that no track explains, judged against the camera's typical person: the
        feet are where a typical person whose head is at the box's top would stand (`foot`, `cut` updated
        in place)."""
        seen = self._statures_seen.get(projection.camera_id)
        if not len(rows) or seen is None or len(seen) < TYPICAL_STATURE_BOXES // 5:
            return
        stature = float(np.median(seen))
        u, top = (xyxy[rows, 0] + xyxy[rows, 2]) / 2, xyxy[rows, 1]
        feet_v = xyxy[rows, 3].copy()
        for _ in range(3):  # the feet row where top + stature at the feet' scale lands on itself
            feet_v = top + stature * projection.px_per_metre(np.stack([u, feet_v], axis=1))
        short = xyxy[rows, 3] - top < CUT_BOX_RATIO * (feet_v - top)
        hidden = self._on_mask(occluders, u, feet_v)
        foot[rows[short & hidden]] = feet_v[short & hidden]
        cut[rows[short & hidden]] = True

    def _occluder_mask(
        self, projection: FloorProjection, resolution_wh: tuple[int, int]
    ) -> npt.NDArray[np.bool_] | None:
        """Where the display cars stand in this camera's image, from floor to roof (at 1/OCCLUDER_SCALE of
        the resolution, grown by OCCLUDER_MARGIN_PX); None when no car is in view.

        A car's roof is drawn a roof height above its footprint using the floor's local scale, the same
        vertical model a track's stature uses."""
        width, height = resolution_wh
        key = (projection.camera_id, (int(width), int(height)))
        if key in self._occluders:
            return self._occluders[key]
        mask = np.zeros((height // OCCLUDER_SCALE + 1, width // OCCLUDER_SCALE + 1), dtype=np.uint8)
        for car in self.config.cars:
            corners = np.asarray(car.interior_zone_m, dtype=np.float64)
            base = projection.to_image(corners)
            back, on_floor = projection.to_floor(base)
            if not on_floor.all() or not np.allclose(back, corners, atol=1e-3):
                continue  # part of the car lies behind the camera
            roof = base - np.stack(
                [np.zeros(len(base)), (car.height_m + ROOF_MARGIN_M) * projection.px_per_metre(base)], axis=1
            )
            outline = np.vstack([base, roof]) / OCCLUDER_SCALE
            if np.abs(outline).max() > 10 * max(width, height):
                continue
            cv2.fillConvexPoly(mask, cv2.convexHull(outline.astype(np.float32)).astype(np.int32), 1)
        grow = int(np.ceil(OCCLUDER_MARGIN_PX / OCCLUDER_SCALE))
        grown = cv2.dilate(mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
        self._occluders[key] = grown.astype(bool) if grown.any() else None
        return self._occluders[key]

    @staticmethod
    def _on_mask(
        mask: npt.NDArray[np.bool_], u: npt.NDArray[np.float64], v: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.bool_]:
        col = np.floor(u / OCCLUDER_SCALE).astype(np.int64)
        row = np.floor(v / OCCLUDER_SCALE).astype(np.int64)
        ok = (col >= 0) & (col < mask.shape[1]) & (row >= 0) & (row < mask.shape[0])
        hit = np.zeros(len(u), dtype=bool)
        hit[ok] = mask[row[ok], col[ok]]
        return hit

    def _looked_at(self, detections_by_camera: dict[str, Detections]) -> BaseGeometry | None:
        """The floor area seen by the cameras that reported at this step; None when that is all of them
        (or when a camera's view is unknown)."""
        reporting = frozenset(c for c in detections_by_camera if c in self.projections)
        if reporting == frozenset(self.projections):
            return None
        if reporting not in self._looked_at_cache:
            views = [self.projections[c].view_m for c in sorted(reporting)]
            area: BaseGeometry | None = Polygon()
            for view in views:
                area = None if view is None or area is None else area.union(view)
            self._looked_at_cache[reporting] = area
        return self._looked_at_cache[reporting]


def _fuse(
    xy: npt.NDArray[np.float64],
    cov: npt.NDArray[np.float64],
    score: npt.NDArray[np.float64],
    sources: list[dict[str, int]],
    radius_m: float,
) -> FloorDetections:
    """Merge detections of one person seen by several cameras (closer than `radius_m`, different cameras).

    Merged positions are information-weighted means; the merged score is the highest. Pairs are taken
    closest first, so the result does not depend on camera order beyond the sorted camera ids.
    """
    cameras = {next(iter(s)) for s in sources}
    if len(cameras) < 2:
        return FloorDetections(xy, cov, score, tuple(sources))
    groups: list[list[int]] = [[i] for i in range(len(sources))]
    group_of = list(range(len(sources)))
    dist = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    pairs = [
        (dist[i, j], i, j) for i in range(len(xy)) for j in range(i + 1, len(xy)) if dist[i, j] <= radius_m
    ]
    for _, i, j in sorted(pairs):
        gi, gj = group_of[i], group_of[j]
        if gi == gj:
            continue
        cams_i = {c for k in groups[gi] for c in sources[k]}
        cams_j = {c for k in groups[gj] for c in sources[k]}
        if cams_i & cams_j:
            continue  # two detections from one camera are two people
        groups[gi] += groups[gj]
        for k in groups[gj]:
            group_of[k] = gi
        groups[gj] = []
    out_xy, out_cov, out_score, out_src = [], [], [], []
    for members in groups:
        if not members:
            continue
        info = sum(np.linalg.inv(cov[k]) for k in members)
        fused_cov = np.linalg.inv(info)
        fused_xy = fused_cov @ sum(np.linalg.inv(cov[k]) @ xy[k] for k in members)
        out_xy.append(fused_xy)
        out_cov.append(fused_cov)
        out_score.append(max(score[k] for k in members))
        merged: dict[str, int] = {}
        for k in members:
            merged.update(sources[k])
        out_src.append(merged)
    return FloorDetections(np.array(out_xy), np.array(out_cov), np.array(out_score), tuple(out_src))
