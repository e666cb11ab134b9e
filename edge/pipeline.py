"""The edge path after the detector: project to the floor, fuse cameras, track, run the analytics.

`EdgePipeline.process` takes one time step's detections from every camera of the node and returns the
contract events it produced. Bad input inside the frame loop never raises and never turns into a count: it is
dropped and counted in `stats` (NaN boxes, boxes outside the image, foot points off the floor, a camera the
configuration does not know, frames whose size does not match the calibration, time going backwards).
Configuration problems (a camera without calibration, an inaccurate calibration, a zone no camera sees) raise
`ConfigError` when the pipeline is built.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt
from shapely import unary_union
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from edge.analytics.showroom import ShowroomAnalytics
from edge.analytics.staff import wears_uniform
from edge.calibration import FloorProjection, calibrate_node, coverage_of
from edge.config import NodeConfig
from edge.events import Envelope, EventStamper
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

        The box stands on the matched detection's anchor point (feet or centre) with the track's smoothed
        size, so it does not breathe with the detector's frame-to-frame size jitter.
        """
        det = self.detections.get(camera_id)
        if det is None:
            return []
        rows = []
        for track in self.tracks:
            index = track.sources.get(camera_id)
            size = self._box_wh.get((track.track_id, camera_id))
            if track.observed and index is not None and size is not None:
                rows.append(
                    (
                        track.track_id,
                        self._box(camera_id, det.xyxy[index], size),
                        float(det.confidence[index]),
                    )
                )
        return rows

    def _box(
        self, camera_id: str, xyxy: npt.NDArray[np.float32], size: tuple[float, float]
    ) -> npt.NDArray[np.float32]:
        w, h = size
        cx = (float(xyxy[0]) + float(xyxy[2])) / 2
        if self.projections[camera_id].anchor == "bottom_center":
            y2 = float(xyxy[3])
            return np.array([cx - w / 2, y2 - h, cx + w / 2, y2], dtype=np.float32)
        cy = (float(xyxy[1]) + float(xyxy[3])) / 2
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float32)

    def _smooth_box_sizes(self) -> None:
        alive: dict[tuple[int, str], tuple[float, float]] = {}
        for track in self.tracks:
            for camera_id, index in track.sources.items():
                x1, y1, x2, y2 = (float(v) for v in self.detections[camera_id].xyxy[index])
                key = (track.track_id, camera_id)
                old = self._box_wh.get(key)
                a = BOX_SIZE_SMOOTHING
                alive[key] = (
                    (x2 - x1, y2 - y1)
                    if old is None
                    else (
                        a * (x2 - x1) + (1 - a) * old[0],
                        a * (y2 - y1) + (1 - a) * old[1],
                    )
                )
            for camera_id in self.projections:
                key = (track.track_id, camera_id)
                if key not in alive and key in self._box_wh:
                    alive[key] = self._box_wh[key]
        self._box_wh = alive

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
        floor = self._to_floor(detections_by_camera)
        step = self.tracker.update(ts_utc, floor, self._looked_at(detections_by_camera))
        self.tracks = step.tracks
        self._smooth_box_sizes()
        uniform = self._uniform_cue(step.tracks, frames_by_camera or {})
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

    def _to_floor(self, detections_by_camera: dict[str, Detections]) -> FloorDetections:
        xy: list[npt.NDArray[np.float64]] = []
        cov: list[npt.NDArray[np.float64]] = []
        score: list[npt.NDArray[np.float64]] = []
        sources: list[dict[str, int]] = []
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
            keep, floor_xy, floor_cov = self._project_camera(projection, det)
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
        self, projection: FloorProjection, det: Detections
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        xyxy = det.xyxy.astype(np.float64)
        finite = np.isfinite(xyxy).all(axis=1) & np.isfinite(det.confidence)
        self.stats.nan_boxes += int((~finite).sum())
        xyxy = np.where(finite[:, None], xyxy, 0.0)
        w, h = det.resolution_wh
        x_mid = (xyxy[:, 0] + xyxy[:, 2]) / 2
        y_foot = xyxy[:, 3] if projection.anchor == "bottom_center" else (xyxy[:, 1] + xyxy[:, 3]) / 2
        inside = (
            (x_mid >= -IMAGE_MARGIN_PX)
            & (x_mid <= w + IMAGE_MARGIN_PX)
            & (y_foot >= -IMAGE_MARGIN_PX)
            & (y_foot <= h + IMAGE_MARGIN_PX)
        )
        bad_box = finite & (~inside | (xyxy[:, 2] < xyxy[:, 0]) | (xyxy[:, 3] < xyxy[:, 1]))
        self.stats.out_of_image_boxes += int(bad_box.sum())
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
        sigma_px = np.maximum(self.config.tracker.box_noise * (xyxy[:, 3] - xyxy[:, 1]), 1.0)
        cov = (jac @ jac.transpose(0, 2, 1)) * (sigma_px**2)[:, None, None]
        cov[:, 0, 0] += FLOOR_NOISE_M**2
        cov[:, 1, 1] += FLOOR_NOISE_M**2
        self.stats.detections_used += int(keep.sum())
        if not keep.all():  # rows off the floor (NaN there) are dropped by the caller; keep arrays finite
            floor_xy, cov = np.nan_to_num(floor_xy), np.nan_to_num(cov)
        return keep, floor_xy, cov

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

    def _uniform_cue(
        self, tracks: list[TrackState], frames: dict[str, npt.NDArray[np.uint8]]
    ) -> frozenset[int]:
        appearance = self.config.staff_appearance
        if appearance is None or not frames:
            return frozenset()
        wearing: set[int] = set()
        for track in tracks:
            for camera_id, index in sorted(track.sources.items()):
                frame = frames.get(camera_id)
                det = self.detections.get(camera_id)
                if (
                    frame is not None
                    and det is not None
                    and wears_uniform(frame, det.xyxy[index], appearance)
                ):
                    wearing.add(track.track_id)
                    break
        return frozenset(wearing)


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
