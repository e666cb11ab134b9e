"""Staff marking: staff-only areas, and the uniform-colour cue computed on the box from a torso crop.

The colour cue reads pixels inside the edge box only; what leaves it is a yes/no per track and frame,
never the crop or its colours.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from edge.config import StaffAppearance

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
