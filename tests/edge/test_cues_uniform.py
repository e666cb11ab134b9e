"""The staff uniform cue: torso crop, colour share, and calibrating the colour from staff photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.config import StaffAppearance
from edge.cues.uniform import calibrate_uniform, torso_crop, uniform_fraction, wears_uniform


def solid(hsv: tuple[int, int, int], size: tuple[int, int] = (40, 30), noise: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = np.zeros((*size, 3), np.float64) + np.array(hsv)
    img += rng.normal(0, noise, img.shape)
    img = np.clip(img, 0, [179, 255, 255]).astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_HSV2BGR)


def test_calibrated_uniform_recognises_the_uniform_and_not_other_clothes() -> None:
    crops = [solid((110, 200, 90), noise=4), solid((112, 190, 100), noise=4)]
    (h, s, v), tol = calibrate_uniform(crops)
    assert abs(h - 111) <= 2 and abs(s - 195) <= 8 and abs(v - 95) <= 8
    appearance = StaffAppearance(uniform_hsv=(h, s, v), tolerance_hsv=tol)
    assert uniform_fraction(solid((111, 195, 95), noise=3), appearance) > 0.9
    assert uniform_fraction(solid((0, 200, 200)), appearance) == 0.0  # a red shirt
    assert uniform_fraction(solid((110, 20, 230)), appearance) == 0.0  # a white shirt


def test_red_hue_wraps_round_the_hue_circle() -> None:
    (h, _, _), _ = calibrate_uniform([solid((178, 200, 150)), solid((2, 200, 150))])
    assert h < 3 or h > 177


def test_torso_crop_is_the_middle_of_the_box_and_refuses_tiny_boxes() -> None:
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[20:40, 40:60] = (255, 0, 0)
    crop = torso_crop(frame, [30, 10, 70, 90])
    assert crop is not None and crop.shape == (24, 20, 3)
    assert torso_crop(frame, [10, 10, 14, 20]) is None
    appearance = StaffAppearance(uniform_hsv=(120, 255, 255))
    assert not wears_uniform(frame, [10, 10, 14, 20], appearance)


def test_calibration_needs_crops() -> None:
    with pytest.raises(ValueError, match="at least one"):
        calibrate_uniform([])
