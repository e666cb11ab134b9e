"""A simulated ceiling camera: what its person detector would report, faults included.

The camera sees the floor through the inverse of its calibration homography (floor metres to image
pixels), within its image. A person becomes a box whose anchor (bottom centre for oblique views, centre for
top-down views) projects back through the calibration onto their true floor position, sized by the
local pixels-per-metre scale. Faults (see `scenarios.NoiseModel`): random misses, false positives, box
jitter, people behind a display car (from this camera's view) missed or cut at the car's roof line, and
people sitting inside a car are not seen at all.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from edge.config import CameraConfig
from edge.sim.appearance import SimAppearance, overlaps_in_front
from edge.sim.scenarios import NoiseModel
from edge.sim.world import Vec, World
from vision_models.detections import Detections

DEFAULT_RESOLUTION_WH = (1920, 1080)
_PERSON_W_M = 0.55
_PERSON_H_M = 1.7
_MASK_SCALE = 4  # occlusion silhouettes are drawn at a quarter of the image resolution


class SimCameraError(ValueError):
    """A camera the simulator cannot model (no calibration, degenerate calibration)."""


def fit_homography(camera: CameraConfig) -> Vec:
    """The image-to-floor homography (3, 3) least-squares fitted to the camera's calibration points."""
    if camera.calibration is None:
        raise SimCameraError(f"camera {camera.id!r} has no calibration; a simulated camera needs one")
    img = np.asarray(camera.calibration.image_points_px, dtype=np.float64)
    floor = np.asarray(camera.calibration.floor_points_m, dtype=np.float64)
    h, _ = cv2.findHomography(img, floor, 0)
    if h is None or not np.isfinite(h).all() or abs(np.linalg.det(h)) < 1e-12:
        raise SimCameraError(f"camera {camera.id!r}: calibration points do not define a homography")
    return np.asarray(h, dtype=np.float64)


def apply_homography(h: Vec, pts: Vec) -> tuple[Vec, Vec]:
    """Points (N, 2) mapped through `h`; returns (mapped (N, 2), homogeneous scale w (N,))."""
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    hom = np.hstack([pts, np.ones((len(pts), 1))]) @ h.T
    w = hom[:, 2]
    safe = np.where(np.abs(w) < 1e-12, 1e-12, w)
    return hom[:, :2] / safe[:, None], w


class SimCamera:
    """One configured camera over the simulated floor.

    Args:
        camera: the camera's configuration (calibration required; resolution default 1920x1080).
        world: the simulated floor (its cars cast occlusion silhouettes).
        noise: fault model.
        rng: random source for this camera's faults.
        appearance: the people's appearance, for re-identification embeddings on request (None: the
            detections carry no appearance).
        appearance_rng: random source for the embeddings' per-view noise (kept apart from the faults', so
            turning appearance on leaves every detection as it was).
    """

    def __init__(
        self,
        camera: CameraConfig,
        world: World,
        noise: NoiseModel,
        rng: np.random.Generator,
        appearance: SimAppearance | None = None,
        appearance_rng: np.random.Generator | None = None,
    ) -> None:
        self.camera = camera
        self.appearance = appearance
        self.appearance_rng = appearance_rng or np.random.default_rng()
        self.id = camera.id
        self.resolution_wh = camera.resolution_wh or DEFAULT_RESOLUTION_WH
        self.noise = noise
        self.rng = rng
        self.image_to_floor = fit_homography(camera)
        self.floor_to_image = np.linalg.inv(self.image_to_floor)
        calib = np.asarray(camera.calibration.floor_points_m if camera.calibration else [], dtype=np.float64)
        _, w = apply_homography(self.floor_to_image, calib)
        self._front_sign = 1.0 if np.median(w) > 0 else -1.0
        self._occluders = (
            self._silhouettes(world) if camera.anchor == "bottom_center" and noise.car_height_m > 0 else None
        )

    # -- geometry ------------------------------------------------------------------------------------

    def project(self, xy_m: Vec) -> tuple[Vec, npt.NDArray[np.bool_]]:
        """Floor points (N, 2) to image pixels (N, 2), and whether each is in front and inside the image."""
        uv, w = apply_homography(self.floor_to_image, xy_m)
        width, height = self.resolution_wh
        ok = (
            (w * self._front_sign > 0)
            & (uv[:, 0] >= 0)
            & (uv[:, 0] < width)
            & (uv[:, 1] >= 0)
            & (uv[:, 1] < height)
        )
        return uv, ok

    def px_per_m(self, xy_m: Vec) -> Vec:
        """Local image scale (N,) at floor points: sqrt of the area ratio of the floor-to-image map."""
        xy_m = np.asarray(xy_m, dtype=np.float64).reshape(-1, 2)
        step = 0.05
        p0, _ = apply_homography(self.floor_to_image, xy_m)
        px, _ = apply_homography(self.floor_to_image, xy_m + np.array([step, 0.0]))
        py, _ = apply_homography(self.floor_to_image, xy_m + np.array([0.0, step]))
        jx, jy = (px - p0) / step, (py - p0) / step
        return np.sqrt(np.abs(jx[:, 0] * jy[:, 1] - jx[:, 1] * jy[:, 0]))

    def boxes(self, xy_m: Vec, height_m: Vec | None = None) -> Vec:
        """Noise-free person boxes (N, 4) xyxy whose anchor projects exactly onto `xy_m`."""
        uv, _ = apply_homography(self.floor_to_image, xy_m)
        scale = self.px_per_m(xy_m)
        h_m = height_m if height_m is not None else np.full(len(uv), _PERSON_H_M)
        if self.camera.anchor == "bottom_center":
            w, h = _PERSON_W_M * scale, h_m * scale
            return np.stack([uv[:, 0] - w / 2, uv[:, 1] - h, uv[:, 0] + w / 2, uv[:, 1]], axis=1)
        side = 0.6 * scale
        return np.stack(
            [uv[:, 0] - side / 2, uv[:, 1] - side / 2, uv[:, 0] + side / 2, uv[:, 1] + side / 2], axis=1
        )

    # -- detections ----------------------------------------------------------------------------------

    def detect(
        self,
        xy_m: Vec,
        seated: npt.NDArray[np.bool_],
        height_m: Vec | None = None,
        person_ids: npt.NDArray[np.int64] | None = None,
        staff: npt.NDArray[np.bool_] | None = None,
    ) -> Detections:
        """The detections of one frame for people at `xy_m` (N, 2); `seated` (N,) people are inside cars.

        With an appearance model, `person_ids` (N,) and `staff` (N,) say who each person is, and the
        detections embed their boxes on request."""
        noise, rng = self.noise, self.rng
        xy_m = np.asarray(xy_m, dtype=np.float64).reshape(-1, 2)
        uv, visible = self.project(xy_m)
        visible &= ~np.asarray(seated, dtype=bool)
        boxes = self.boxes(xy_m, height_m)
        if noise.p_miss > 0:
            visible &= rng.random(len(xy_m)) >= noise.p_miss
        full_bottom = boxes[:, 3].copy()
        boxes, visible = self._occlude(uv, boxes, visible)
        cut = (boxes[:, 3] < full_bottom - 1e-6)[visible]
        boxes = boxes[visible]
        pids = (
            np.asarray(person_ids, dtype=np.int64)[visible]
            if person_ids is not None
            else np.arange(len(boxes), dtype=np.int64)
        )
        is_staff = np.asarray(staff, dtype=bool)[visible] if staff is not None else np.zeros(len(boxes), bool)
        if noise.jitter_frac > 0 and len(boxes):
            sigma = noise.jitter_frac * (boxes[:, 3] - boxes[:, 1])
            boxes = boxes + rng.normal(0.0, 1.0, boxes.shape) * sigma[:, None]
        conf = rng.uniform(0.45, 0.95, len(boxes))
        fps = self._false_positives()
        if len(fps):
            boxes = np.vstack([boxes, fps])
            conf = np.concatenate([conf, rng.uniform(0.3, 0.6, len(fps))])
            pids = np.concatenate([pids, np.full(len(fps), -1, dtype=np.int64)])
            is_staff = np.concatenate([is_staff, np.zeros(len(fps), bool)])
            cut = np.concatenate([cut, np.zeros(len(fps), bool)])
        if len(boxes):
            x1, x2 = np.minimum(boxes[:, 0], boxes[:, 2]), np.maximum(boxes[:, 0], boxes[:, 2])
            y1, y2 = np.minimum(boxes[:, 1], boxes[:, 3]), np.maximum(boxes[:, 1], boxes[:, 3])
            boxes = np.stack([x1, y1, x2, y2], axis=1)
        embed = None
        if self.appearance is not None:
            front, overlap = overlaps_in_front(boxes, self.camera.anchor == "bottom_center")
            embed = self.appearance.embedder(pids, is_staff, front, overlap, cut, self.appearance_rng)
        dets = Detections(
            boxes.astype(np.float32), conf.astype(np.float32), self.resolution_wh, embed
        ).clipped()
        keep = (dets.xyxy[:, 2] - dets.xyxy[:, 0] > 1) & (dets.xyxy[:, 3] - dets.xyxy[:, 1] > 1)
        return dets[keep]

    def _occlude(
        self, uv: Vec, boxes: Vec, visible: npt.NDArray[np.bool_]
    ) -> tuple[Vec, npt.NDArray[np.bool_]]:
        if self._occluders is None or not visible.any():
            return boxes, visible
        labels, top_rows = self._occluders
        idx = np.flatnonzero(visible)
        col = np.clip((uv[idx, 0] / _MASK_SCALE).astype(int), 0, labels.shape[1] - 1)
        row = np.clip((uv[idx, 1] / _MASK_SCALE).astype(int), 0, labels.shape[0] - 1)
        car = labels[row, col]
        boxes = boxes.copy()
        visible = visible.copy()
        for i, c, cc in zip(idx[car > 0], car[car > 0], col[car > 0], strict=True):
            if self.rng.random() < self.noise.p_occluded_miss:
                visible[i] = False
                continue
            roof = float(top_rows[c - 1][cc]) * _MASK_SCALE
            full = boxes[i, 3] - boxes[i, 1]
            boxes[i, 3] = min(boxes[i, 3], roof)
            if boxes[i, 3] - boxes[i, 1] < 0.35 * full:
                visible[i] = False
        return boxes, visible

    def _false_positives(self) -> Vec:
        n = int(self.rng.poisson(self.noise.fp_per_frame)) if self.noise.fp_per_frame > 0 else 0
        if n == 0:
            return np.zeros((0, 4))
        width, height = self.resolution_wh
        uv = np.stack([self.rng.uniform(0, width, n), self.rng.uniform(height * 0.2, height, n)], axis=1)
        floor, _ = apply_homography(self.image_to_floor, uv)
        return self.boxes(floor) if len(floor) else np.zeros((0, 4))

    def _silhouettes(self, world: World) -> tuple[npt.NDArray[np.int32], list[npt.NDArray[np.int32]]]:
        """Per pixel (quarter resolution): which car hides the feet of a person standing there (0: none)."""
        width, height = self.resolution_wh
        shape = (height // _MASK_SCALE + 1, width // _MASK_SCALE + 1)
        labels = np.zeros(shape, dtype=np.int32)
        footprints = np.zeros(shape, dtype=np.uint8)
        tops: list[npt.NDArray[np.int32]] = []
        for n, car in enumerate(world.cars, start=1):
            pts = np.asarray(car.interior.exterior.coords[:-1], dtype=np.float64)
            base, w = apply_homography(self.floor_to_image, pts)
            if (w * self._front_sign <= 0).any():
                tops.append(np.full(shape[1], shape[0], dtype=np.int32))
                continue
            roof = base - np.stack(
                [np.zeros(len(base)), self.noise.car_height_m * self.px_per_m(pts)], axis=1
            )
            hull = cv2.convexHull(np.vstack([base, roof]).astype(np.float32) / _MASK_SCALE).astype(np.int32)
            one = np.zeros(shape, dtype=np.uint8)
            cv2.fillConvexPoly(one, hull, 1)
            labels[one > 0] = n
            cv2.fillConvexPoly(footprints, (base / _MASK_SCALE).astype(np.int32), 1)
            rows = np.where(one.any(axis=0), one.argmax(axis=0), shape[0]).astype(np.int32)
            tops.append(rows)
        labels[footprints > 0] = 0
        return labels, tops


__all__ = ["DEFAULT_RESOLUTION_WH", "SimCamera", "SimCameraError", "apply_homography", "fit_homography"]
