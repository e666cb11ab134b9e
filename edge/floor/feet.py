"""Where a person stands in the image when a display car cut their box short at its roof line.

A person stands on the floor where the bottom edge of their box meets it. An oblique camera sees people over
the display cars: someone behind a car from its view is boxed down to the car's roof line, and that edge would
put them beyond the car (more than a metre in the simulated store). So each car's silhouette is drawn in each
camera from its footprint and roof height (`CarConfig.height_m`), each tracked person's stature is learned
from the boxes that show them whole, and a box that ends on a car and is too short for its person (or, when no
track explains it, for the camera's typical person) is stood a full height below its top.

Stature is a box's height in pixels times the floor's metres per pixel at its feet: nearly constant for one
person as they walk, so their box height can be foreseen anywhere in the image. Only boxes whose feet are
clear of every car, with head and feet inside the image, teach it. Such cut boxes are counted as `cut_boxes`
in the pipeline's counters; their foot points carry extra uncertainty (`CUT_BOX_NOISE`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import cv2
import numpy as np
import numpy.typing as npt

from edge.config import CarConfig
from edge.floor.calibration import FloorProjection
from edge.tracking import TrackState
from vision_models.arrays import BoolArray, Float64Array

CUT_BOX_RATIO = 0.85
"""A box ending on a display car that is shorter than this share of its person's expected height has its
feet hidden behind the car: its foot point is placed a full height below its top."""
CUT_BOX_GATE = 0.25
"""How far a box's top may lie from where a track's head is expected, in the track's full heights, for the
box to be judged against that track's height."""
CUT_BOX_NOISE = 0.1
"""Uncertainty of a foot point placed from the top of a cut box, in full heights (posture, stride)."""
TYPICAL_STATURE_BOXES = 500
"""How many of a camera's latest whole boxes make its typical person."""
STATURE_SMOOTHING = 0.4
"""Weight of the newest whole box in a track's stature (exponential smoothing; the overlay's box sizes use
the same weight)."""
OCCLUDER_SCALE = 4
"""Car silhouettes are drawn at this fraction of the image resolution."""
OCCLUDER_MARGIN_PX = 12
"""How far outside a car's silhouette a box's bottom edge may lie and still be taken to end on the car."""
ROOF_MARGIN_M = 0.3
"""Silhouettes reach this much above a car's configured roof height (a taller car than configured, a roof
box): a box cut at the real roof line must still count as ending on the car, or it would teach its person a
stature that is too short."""


@dataclass(frozen=True)
class Feet:
    """One camera's boxes at one time step: where each stands in the image, and what it shows. All (N,), one
    row per box of the camera's `Detections`."""

    row_px: Float64Array
    """float64, the image row (pixels) the person stands on: the box's bottom edge, or below it when a car
    cut the box (for a `center` anchor camera: the box centre's row)."""
    cut: BoolArray
    """Cut short at the bottom by a car."""
    whole: BoolArray
    """Shows the whole person: head and feet inside the image, feet clear of every car."""
    stature: Float64Array
    """float64, metres: box height (to `row_px`) times the floor's metres per pixel there."""


class CutBoxRecovery:
    """Stands boxes cut by display cars: per (track id, camera id) statures, per camera the typical person's,
    and per camera and frame size the cars' silhouettes (drawn once)."""

    def __init__(self, cars: Sequence[CarConfig]) -> None:
        self._cars = list(cars)
        self._stature: dict[tuple[int, str], float] = {}
        """Per (track, camera): the person's stature, metres (smoothed over their whole boxes)."""
        self._statures_seen: dict[str, deque[float]] = {}
        """Per camera, the statures of the latest whole boxes: the typical person, for a box cut by a car
        that no known track's head explains (someone who walked in behind a car)."""
        self._occluders: dict[tuple[str, tuple[int, int]], BoolArray | None] = {}

    def stand(
        self,
        projection: FloorProjection,
        resolution_wh: tuple[int, int],
        xyxy: Float64Array,
        head_in: BoolArray,
        in_frame: BoolArray,
        tracks: Sequence[TrackState],
        ts_utc: datetime,
    ) -> tuple[Float64Array, BoolArray, BoolArray]:
        """Per box of one camera: the image row its person stands on, whether a car cut the box short, and
        whether it shows the whole person.

        `xyxy` float64 (N, 4) pixels (finite); `head_in` bool (N,): usable boxes whose top is inside the
        image; `in_frame` bool (N,): of those, the ones whose bottom is inside too. `tracks` are the confirmed
        tracks of the previous step. A box whose bottom edge ends on a car's silhouette is matched by its top
        to where a known track's head should be in this camera (the track's floor position moved on by its
        velocity, and its stature). When it is clearly shorter than that track's height there, and the feet a
        full height below its top would be hidden by the car, the person stands there.
        """
        foot = xyxy[:, 3].copy()
        cut = np.zeros(len(xyxy), dtype=bool)
        occluders = self._occluder_mask(projection, resolution_wh)
        if occluders is None:
            return foot, cut, in_frame
        on_car = on_mask(occluders, (xyxy[:, 0] + xyxy[:, 2]) / 2, xyxy[:, 3])
        whole = in_frame & ~on_car
        candidates = np.flatnonzero(head_in & on_car)
        if not len(candidates):
            return foot, cut, whole
        camera_id = projection.camera_id
        heads = []
        for track in tracks:
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
                and on_mask(occluders, np.array([top_u[i]]), np.array([feet_v]))[0]
            ):
                foot[candidates[i]] = feet_v
                cut[candidates[i]] = True
        unexplained = np.array([candidates[i] for i in range(len(candidates)) if i not in taken_box], np.intp)
        self._typical_feet(projection, occluders, xyxy, unexplained, foot, cut)
        return foot, cut, whole

    def learn(
        self, tracks: Sequence[TrackState], feet: Mapping[str, Feet], camera_ids: Iterable[str]
    ) -> None:
        """Take this step's statures: each track's, smoothed over its whole boxes (`track.sources` index into
        `feet[camera_id]`), and every whole box's for its camera's typical person. A track keeps its stature
        in a camera that does not see it now; tracks gone from `tracks` are forgotten."""
        statures: dict[tuple[int, str], float] = {}
        a = STATURE_SMOOTHING
        for track in tracks:
            for camera_id, index in track.sources.items():
                key = (track.track_id, camera_id)
                old_stature = self._stature.get(key)
                if bool(feet[camera_id].whole[index]):
                    stature = float(feet[camera_id].stature[index])
                    self._statures_seen.setdefault(camera_id, deque(maxlen=TYPICAL_STATURE_BOXES)).append(
                        stature
                    )
                    statures[key] = stature if old_stature is None else a * stature + (1 - a) * old_stature
                elif old_stature is not None:
                    statures[key] = old_stature
            for camera_id in camera_ids:
                key = (track.track_id, camera_id)
                if key not in statures and key in self._stature:
                    statures[key] = self._stature[key]
        self._stature = statures

    def _typical_feet(
        self,
        projection: FloorProjection,
        occluders: BoolArray,
        xyxy: Float64Array,
        rows: npt.NDArray[np.intp],
        foot: Float64Array,
        cut: BoolArray,
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
        hidden = on_mask(occluders, u, feet_v)
        foot[rows[short & hidden]] = feet_v[short & hidden]
        cut[rows[short & hidden]] = True

    def _occluder_mask(self, projection: FloorProjection, resolution_wh: tuple[int, int]) -> BoolArray | None:
        """Where the display cars stand in this camera's image, from floor to roof: bool (H / OCCLUDER_SCALE
        + 1, W / OCCLUDER_SCALE + 1), grown by OCCLUDER_MARGIN_PX; None when no car is in view.

        A car's roof is drawn a roof height above its footprint using the floor's local scale, the same
        vertical model a track's stature uses."""
        width, height = resolution_wh
        key = (projection.camera_id, (int(width), int(height)))
        if key in self._occluders:
            return self._occluders[key]
        mask = np.zeros((height // OCCLUDER_SCALE + 1, width // OCCLUDER_SCALE + 1), dtype=np.uint8)
        for car in self._cars:
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


def on_mask(mask: BoolArray, u: Float64Array, v: Float64Array) -> BoolArray:
    """bool (N,): whether image points (`u`, `v` float64 (N,), full-resolution pixels) fall on a silhouette
    mask drawn at 1/OCCLUDER_SCALE; points outside the mask are not on it."""
    col = np.floor(u / OCCLUDER_SCALE).astype(np.int64)
    row = np.floor(v / OCCLUDER_SCALE).astype(np.int64)
    ok = (col >= 0) & (col < mask.shape[1]) & (row >= 0) & (row < mask.shape[0])
    hit = np.zeros(len(u), dtype=bool)
    hit[ok] = mask[row[ok], col[ok]]
    return hit
