"""The staff uniform cue: whether a person's torso shows the uniform colour, computed on the box.

`uniform_cue` reads the pixels of each confirmed track's boxes in this step's BGR frames and returns the ids
of the tracks wearing the uniform; the analytics receive only those ids (they mark staff from them and from
the staff-only areas), never a frame, a crop or its colours. `calibrate_uniform` measures the colour from
staff photos at installation; only the numbers are stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import numpy.typing as npt

from edge.config import StaffAppearance
from edge.tracking import TrackState
from vision_models.detections import Detections

TORSO_X = (0.25, 0.75)
TORSO_Y = (0.2, 0.5)
"""The torso as fractions of a person box's width and height (shoulders to waist, arms left out)."""


def torso_crop(frame_bgr: npt.NDArray[np.uint8], xyxy: npt.ArrayLike) -> npt.NDArray[np.uint8] | None:
    """The torso part of a person box, or None when it is too small to judge (under 4 x 4 pixels)."""
    x1, y1, x2, y2 = (float(v) for v in np.asarray(xyxy, dtype=np.float64).reshape(4))
    w, h = x2 - x1, y2 - y1
    height, width = frame_bgr.shape[:2]
    cx1 = int(max(0, round(x1 + TORSO_X[0] * w)))
    cx2 = int(min(width, round(x1 + TORSO_X[1] * w)))
    cy1 = int(max(0, round(y1 + TORSO_Y[0] * h)))
    cy2 = int(min(height, round(y1 + TORSO_Y[1] * h)))
    if cx2 - cx1 < 4 or cy2 - cy1 < 4:
        return None
    return frame_bgr[cy1:cy2, cx1:cx2]


def uniform_fraction(crop_bgr: npt.NDArray[np.uint8], appearance: StaffAppearance) -> float:
    """Share of the crop's pixels within the uniform colour's tolerance (hue compared on its circle)."""
    hsv = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.float32)
    h0, s0, v0 = appearance.uniform_hsv
    th, ts, tv = appearance.tolerance_hsv
    dh = np.abs(hsv[:, 0] - h0)
    dh = np.minimum(dh, 180 - dh)
    ok = (dh <= th) & (np.abs(hsv[:, 1] - s0) <= ts) & (np.abs(hsv[:, 2] - v0) <= tv)
    return float(ok.mean()) if len(ok) else 0.0


def wears_uniform(frame_bgr: npt.NDArray[np.uint8], xyxy: npt.ArrayLike, appearance: StaffAppearance) -> bool:
    """True when the person box's torso is mostly the uniform colour."""
    crop = torso_crop(frame_bgr, xyxy)
    return crop is not None and uniform_fraction(crop, appearance) >= appearance.min_fraction


def uniform_cue(
    tracks: Sequence[TrackState],
    detections_by_camera: Mapping[str, Detections],
    frames_by_camera: Mapping[str, npt.NDArray[np.uint8]],
    appearance: StaffAppearance | None,
) -> frozenset[int]:
    """Ids of the `tracks` that wear the uniform in this step: any of a track's boxes (`track.sources`
    index into `detections_by_camera`, cameras in sorted order) whose torso in that camera's BGR frame
    (uint8, H x W x 3) is mostly the uniform colour. Empty without a configured uniform or without frames.
    """
    if appearance is None or not frames_by_camera:
        return frozenset()
    wearing: set[int] = set()
    for track in tracks:
        for camera_id, index in sorted(track.sources.items()):
            frame = frames_by_camera.get(camera_id)
            det = detections_by_camera.get(camera_id)
            if frame is not None and det is not None and wears_uniform(frame, det.xyxy[index], appearance):
                wearing.add(track.track_id)
                break
    return frozenset(wearing)


def calibrate_uniform(
    torso_crops_bgr: list[npt.NDArray[np.uint8]], min_tolerance_hsv: tuple[float, float, float] = (8, 40, 40)
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """The uniform colour and tolerance (OpenCV HSV) from torso crops of staff, taken at installation.

    The hue is averaged on its circle; tolerances are 2.5 standard deviations of the pooled pixels, at least
    `min_tolerance_hsv`. Raises `ValueError` without crops. Runs on the box; only the numbers are stored.
    """
    if not torso_crops_bgr:
        raise ValueError("need at least one torso crop of a staff member in uniform")
    hsv = np.concatenate(
        [cv2.cvtColor(c, cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.float64) for c in torso_crops_bgr]
    )
    angle = hsv[:, 0] * (2 * np.pi / 180)
    mean_angle = float(np.arctan2(np.sin(angle).mean(), np.cos(angle).mean()))
    h0 = (mean_angle * 180 / (2 * np.pi)) % 180
    dh = np.abs(hsv[:, 0] - h0)
    dh = np.minimum(dh, 180 - dh)
    s0, v0 = float(hsv[:, 1].mean()), float(hsv[:, 2].mean())
    tol = (
        min(90.0, max(min_tolerance_hsv[0], 2.5 * float(np.sqrt((dh**2).mean())))),
        min(255.0, max(min_tolerance_hsv[1], 2.5 * float(hsv[:, 1].std()))),
        min(255.0, max(min_tolerance_hsv[2], 2.5 * float(hsv[:, 2].std()))),
    )
    return (round(h0, 1), round(s0, 1), round(v0, 1)), (round(tol[0], 1), round(tol[1], 1), round(tol[2], 1))
