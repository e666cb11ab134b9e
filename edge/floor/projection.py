"""One camera's detections to floor positions with their uncertainty.

Each box is checked against the image (finite, ordered, its anchor point inside the image), given a foot
point (bottom centre for oblique cameras, stood lower when a display car cut the box: `edge.floor.feet`; box
centre for overhead cameras), projected through the camera's homography, and kept when it lands on the floor
plan or near it. Its covariance is the box's pixel noise carried through the projection's Jacobian, plus a
floor noise that remains however close the person is. Rejected boxes are counted, never raised on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from edge.config import NodeConfig
from edge.floor.calibration import FloorProjection, metres_per_px_scale
from edge.floor.feet import CUT_BOX_NOISE, CutBoxRecovery, Feet
from edge.tracking import TrackState
from vision_models.arrays import BoolArray, Float64Array
from vision_models.detections import Detections

OFF_FLOOR_MARGIN_M = 5.0
"""Foot points this far outside the floor plan are kept (people just outside a door must be tracked to
count them coming in); further out they are not on this floor."""
IMAGE_MARGIN_PX = 2.0
"""How far outside the image a box's anchor, top or bottom may lie and still count as inside it."""
FLOOR_NOISE_M = 0.05
"""Floor-position uncertainty that remains however close the person is (calibration, posture)."""


@dataclass(frozen=True)
class CameraFloor:
    """One camera's detections at one time step, on the floor; K of its N boxes kept."""

    camera_id: str
    index: npt.NDArray[np.intp]
    """(K,) the kept boxes' rows in the camera's `Detections`."""
    xy_m: Float64Array
    """float64 (K, 2), floor position in metres."""
    cov_m2: Float64Array
    """float64 (K, 2, 2), position covariance in square metres."""
    score: Float64Array
    """float64 (K,), detector confidence."""
    feet: Feet
    """Per box (N,): where it stands in the image and what it shows."""
    out_of_image_boxes: int
    """Boxes whose anchor lies outside the image, or whose corners are out of order."""
    off_floor: int
    """Usable boxes whose foot point is beyond the horizon or further than OFF_FLOOR_MARGIN_M off the plan."""
    stature_m: Float64Array | None = None
    """float64 (K,), the stature each kept box implies, metres; NaN where the box does not show the whole
    person (head or feet outside the image, feet behind a car, an overhead camera): the tracker judges weak
    detections by it (`TrackerConfig.stature_range`). None: unknown for every box."""


class FloorProjector:
    """Projects each camera's boxes to the floor plan (bounds grown by OFF_FLOOR_MARGIN_M) and knows which
    floor area a set of reporting cameras sees."""

    def __init__(
        self, config: NodeConfig, projections: Mapping[str, FloorProjection], cut_boxes: CutBoxRecovery
    ) -> None:
        self._config = config
        self._projections = projections
        self._cut_boxes = cut_boxes
        size_x, size_y = config.floor.size_m
        self.bounds_m = (
            -OFF_FLOOR_MARGIN_M,
            -OFF_FLOOR_MARGIN_M,
            size_x + OFF_FLOOR_MARGIN_M,
            size_y + OFF_FLOOR_MARGIN_M,
        )
        """(x_min, y_min, x_max, y_max) metres: foot points outside are off the floor."""
        self._looked_at: dict[frozenset[str], BaseGeometry | None] = {}

    def project(
        self, projection: FloorProjection, det: Detections, tracks: Sequence[TrackState], ts_utc: datetime
    ) -> CameraFloor:
        """One camera's `det` (its frame size matching `projection`) on the floor at `ts_utc`; `tracks` are
        the previous step's confirmed tracks (they tell boxes cut by a car)."""
        xyxy = det.xyxy.astype(np.float64)  # finite: Detections are validated where built, and read-only
        w, h = det.resolution_wh
        x_mid = (xyxy[:, 0] + xyxy[:, 2]) / 2
        y_anchor = xyxy[:, 3] if projection.anchor == "bottom_center" else (xyxy[:, 1] + xyxy[:, 3]) / 2
        inside = (
            (x_mid >= -IMAGE_MARGIN_PX)
            & (x_mid <= w + IMAGE_MARGIN_PX)
            & (y_anchor >= -IMAGE_MARGIN_PX)
            & (y_anchor <= h + IMAGE_MARGIN_PX)
        )
        bad_box = ~inside | (xyxy[:, 2] < xyxy[:, 0]) | (xyxy[:, 3] < xyxy[:, 1])
        usable = ~bad_box
        y_foot, cut = y_anchor, np.zeros(len(xyxy), dtype=bool)
        whole = np.zeros(len(xyxy), dtype=bool)
        if projection.anchor == "bottom_center":
            head_in = usable & (xyxy[:, 1] > IMAGE_MARGIN_PX)
            in_frame = head_in & (xyxy[:, 3] < h - IMAGE_MARGIN_PX)
            y_foot, cut, whole = self._cut_boxes.stand(
                projection, det.resolution_wh, xyxy, head_in, in_frame, tracks, ts_utc
            )
        anchors = np.stack([x_mid, y_foot], axis=1)
        floor_xy, on_floor = projection.to_floor(anchors)
        x0, y0, x1, y1 = self.bounds_m
        with np.errstate(invalid="ignore"):
            on_floor &= (
                (floor_xy[:, 0] >= x0)
                & (floor_xy[:, 0] <= x1)
                & (floor_xy[:, 1] >= y0)
                & (floor_xy[:, 1] <= y1)
            )
        keep = usable & on_floor
        jac = projection.metres_per_pixel(anchors)
        height_px = y_foot - xyxy[:, 1] if projection.anchor == "bottom_center" else xyxy[:, 3] - xyxy[:, 1]
        stature = height_px * metres_per_px_scale(jac)
        box_noise = self._config.tracker.box_noise
        noise = np.where(cut, np.hypot(box_noise, CUT_BOX_NOISE), box_noise)
        sigma_px = np.maximum(noise * height_px, 1.0)
        cov = (jac @ jac.transpose(0, 2, 1)) * (sigma_px**2)[:, None, None]
        cov[:, 0, 0] += FLOOR_NOISE_M**2
        cov[:, 1, 1] += FLOOR_NOISE_M**2
        if not keep.all():  # rows off the floor (NaN there) are dropped below; keep arrays finite
            floor_xy, cov = np.nan_to_num(floor_xy), np.nan_to_num(cov)
        index = np.flatnonzero(keep)
        return CameraFloor(
            camera_id=projection.camera_id,
            index=index,
            xy_m=floor_xy[index],
            cov_m2=cov[index],
            score=det.confidence[index].astype(np.float64),
            feet=Feet(y_foot, cut, whole, stature),
            stature_m=self._upright_stature(jac, height_px, whole)[index],
            out_of_image_boxes=int(bad_box.sum()),
            off_floor=int((usable & ~on_floor).sum()),
        )

    @staticmethod
    def _upright_stature(jac: Float64Array, height_px: Float64Array, whole: BoolArray) -> Float64Array:
        """(N,) metres: box height times the floor's metres per pixel along the image row at the feet.

        A standing person is upright, across the line of sight, so their height in pixels scales like a floor
        length across the line of sight (the image row), not like the foreshortened floor along it (the area
        scale of `Feet.stature` mixes both, and overstates by the camera's tilt). NaN for boxes that do not
        show the whole person."""
        across = np.hypot(jac[:, 0, 0], jac[:, 1, 0])
        stature = height_px * across
        return np.asarray(np.where(whole & (stature > 0), stature, np.nan), dtype=np.float64)

    def looked_at(self, camera_ids: Iterable[str]) -> BaseGeometry | None:
        """The floor area seen by the calibrated cameras among `camera_ids` (those that reported at a step);
        None when that is all of them (or when a camera's view is unknown)."""
        reporting = frozenset(c for c in camera_ids if c in self._projections)
        if reporting == frozenset(self._projections):
            return None
        if reporting not in self._looked_at:
            views = [self._projections[c].view_m for c in sorted(reporting)]
            area: BaseGeometry | None = Polygon()
            for view in views:
                area = None if view is None or area is None else area.union(view)
            self._looked_at[reporting] = area
        return self._looked_at[reporting]
