"""`showroom hardware calibrate` on PETS09-S2L1 with its independent ground truth.

Calibration pairs are taken from the ground truth (the bottom centre of an annotated box, in the 480 x 360
video's pixels, against the person's world position on the ground plane + (25, 20) m, as examples/pets09.yaml
places the plan), spread over the image. Every other ground-truth foot point is then a held-out check of the
fit the command accepts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner, Result

from hardware.calibrate import calibrate_command

REPO = Path(__file__).resolve().parents[2]
PETS_EXAMPLE = REPO / "examples" / "pets09.yaml"
OFFSET_M = np.array([25.0, 20.0])  # examples/pets09.yaml: floor = PETS ground plane + (25, 20) m
SCALE = 0.625  # ground truth in 768 x 576 pixels, the video is 480 x 360


def ground_truth(pets_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) foot points in video pixels and (N, 2) floor positions in metres of the usable ground truth:
    boxes fully inside the frame (a box cut by the border has no true bottom centre)."""
    gt = np.loadtxt(pets_dir / "gt.txt", delimiter=",")
    x, y, w, h = gt[:, 2], gt[:, 3], gt[:, 4], gt[:, 5]
    keep = (gt[:, 6] > 0) & (x >= 2) & (y >= 2) & (x + w <= 766) & (y + h <= 574)
    gt = gt[keep]
    feet_px = np.column_stack([gt[:, 2] + gt[:, 4] / 2, gt[:, 3] + gt[:, 5]]) * SCALE
    return feet_px, gt[:, 7:9] + OFFSET_M


def spread_pairs(feet_px: np.ndarray, n: int) -> list[int]:
    """`n` ground-truth rows spread over the image: farthest-point sampling from near the centre."""
    chosen = [int(np.argmin(np.linalg.norm(feet_px - (240, 220), axis=1)))]
    dist = np.linalg.norm(feet_px - feet_px[chosen[0]], axis=1)
    for _ in range(n - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(feet_px - feet_px[nxt], axis=1))
    return chosen


def write_config(tmp_path: Path, image_px: np.ndarray, floor_m: np.ndarray, **calibration: Any) -> Path:
    """examples/pets09.yaml with this calibration on its camera."""
    data = yaml.safe_load(PETS_EXAMPLE.read_text())
    data["cameras"][0]["calibration"] = {
        "image_points_px": np.round(image_px, 2).tolist(),
        "floor_points_m": np.round(floor_m, 3).tolist(),
        **calibration,
    }
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def snapshot(pets_dir: Path, tmp_path: Path) -> Path:
    capture = cv2.VideoCapture(str(pets_dir / "vtest_480x360.avi"))
    ok, frame = capture.read()
    capture.release()
    assert ok
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), frame)
    return path


def calibrate(config: Path, out: Path, *extra: str) -> Result:
    args = ["--config", str(config), "--camera", "view-1", "--out", str(out), *extra]
    return CliRunner().invoke(calibrate_command, args)


@pytest.fixture
def truth(pets_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    return ground_truth(pets_dir)


def test_ground_truth_pairs_pass_and_the_fit_holds_on_every_other_ground_truth_point(
    pets_dir: Path, tmp_path: Path, truth: tuple[np.ndarray, np.ndarray]
) -> None:
    feet_px, floor_m = truth
    chosen = spread_pairs(feet_px, 10)
    config = write_config(tmp_path, feet_px[chosen], floor_m[chosen])
    frame = snapshot(pets_dir, tmp_path)
    out = tmp_path / "overlay.png"
    result = calibrate(config, out, "--snapshot", str(frame), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    held_out = [p["held_out_error_m"] for p in report["pairs"]]
    print(f"10 ground-truth pairs: held-out error per pair (m) {np.round(held_out, 3).tolist()}")
    assert report["verdict"] == "ok" and report["rejected_pairs"] == [] and report["discarded_pairs"] == []
    assert max(held_out) < 0.3

    # Independent check: the accepted fit against every ground-truth foot point not used to make it.
    h = np.asarray(report["homography"])
    others = np.setdiff1d(np.arange(len(feet_px)), chosen)
    homog = np.hstack([feet_px[others], np.ones((len(others), 1))]) @ h.T
    errors = np.linalg.norm(homog[:, :2] / homog[:, 2:3] - floor_m[others], axis=1)
    print(
        f"accepted fit on {len(others)} held-out ground-truth points: mean {errors.mean():.3f} m, "
        f"p95 {np.percentile(errors, 95):.3f} m, max {errors.max():.3f} m"
    )
    assert errors.mean() < 0.1 and np.percentile(errors, 95) < 0.25

    # The overlay is the snapshot with the floor drawn on it.
    drawn = cv2.imread(str(out))
    original = cv2.imread(str(frame))
    assert drawn is not None and drawn.shape == original.shape
    changed = np.any(drawn != original, axis=2).mean()
    assert 0.02 < changed < 0.9, f"{changed:.1%} of the pixels drawn"


def test_two_marks_moved_by_a_metre_are_rejected_and_both_named(
    tmp_path: Path, truth: tuple[np.ndarray, np.ndarray]
) -> None:
    feet_px, floor_m = truth
    chosen = spread_pairs(feet_px, 10)
    floor = floor_m[chosen].copy()
    floor[2] += (1.0, 0.0)
    floor[6] += (0.0, -1.0)
    config = write_config(tmp_path, feet_px[chosen], floor)
    result = calibrate(config, tmp_path / "overlay.png")
    print(result.output)
    assert result.exit_code == 1
    assert "REJECTED (calibration[2], calibration[6])" in result.output
    report = json.loads(calibrate(config, tmp_path / "overlay.png", "--json").output)
    assert report["rejected_pairs"] == ["calibration[2]", "calibration[6]"]
    by_key = {p["key"]: p for p in report["pairs"]}
    assert by_key["calibration[2]"]["held_out_error_m"] > 0.9
    assert by_key["calibration[6]"]["held_out_error_m"] > 0.9


def test_four_pairs_are_refused_unless_allowed_then_pass_with_a_warning(
    tmp_path: Path, truth: tuple[np.ndarray, np.ndarray]
) -> None:
    feet_px, floor_m = truth
    chosen = spread_pairs(feet_px, 5)[1:]  # the four outermost: a fit through them is exact whatever they are
    config = write_config(tmp_path, feet_px[chosen], floor_m[chosen])
    refused = calibrate(config, tmp_path / "a.png")
    assert refused.exit_code == 1
    assert "only 4 pairs; at least 6 are needed" in refused.output

    allowed = calibrate(config, tmp_path / "b.png", "--allow-few-points")
    assert allowed.exit_code == 0, allowed.output
    assert "warning calibration: only 4 pairs (no pair can be checked against the others)" in allowed.output
    assert "OK with warnings" in allowed.output

    by_config = write_config(tmp_path, feet_px[chosen], floor_m[chosen], allow_few_points=True)
    assert calibrate(by_config, tmp_path / "c.png").exit_code == 0


def test_marks_nearly_on_one_line_are_warned(tmp_path: Path, truth: tuple[np.ndarray, np.ndarray]) -> None:
    feet_px, floor_m = truth
    band = np.flatnonzero(np.abs(feet_px[:, 1] - 250) < 6)
    chosen = band[spread_pairs(feet_px[band], 6)]
    config = write_config(tmp_path, feet_px[chosen], floor_m[chosen])
    result = calibrate(config, tmp_path / "overlay.png")
    print(result.output)
    assert "warning calibration: the marks lie nearly on one line" in result.output


def test_marks_bunched_in_a_corner_are_warned(tmp_path: Path, truth: tuple[np.ndarray, np.ndarray]) -> None:
    feet_px, floor_m = truth
    corner = np.flatnonzero((feet_px[:, 0] < 160) & (feet_px[:, 1] > 230))
    chosen = corner[spread_pairs(feet_px[corner], 6)]
    config = write_config(tmp_path, feet_px[chosen], floor_m[chosen])
    result = calibrate(config, tmp_path / "overlay.png")
    print(result.output)
    assert "of the 480 x 360 image (convex hull" in result.output


def test_overlay_without_snapshot_is_drawn_on_a_grey_canvas(
    tmp_path: Path, truth: tuple[np.ndarray, np.ndarray]
) -> None:
    feet_px, floor_m = truth
    chosen = spread_pairs(feet_px, 8)
    config = write_config(tmp_path, feet_px[chosen], floor_m[chosen])
    out = tmp_path / "sub" / "overlay.png"
    assert calibrate(config, out).exit_code == 0
    drawn = cv2.imread(str(out))
    assert drawn is not None and drawn.shape == (360, 480, 3)
    assert np.any(drawn != 96, axis=2).mean() > 0.02  # grid, zones and marks over the grey


def test_unusable_inputs_are_named_with_exit_2_and_no_traceback(
    tmp_path: Path, truth: tuple[np.ndarray, np.ndarray]
) -> None:
    feet_px, floor_m = truth
    chosen = spread_pairs(feet_px, 8)
    config = write_config(tmp_path, feet_px[chosen], floor_m[chosen])

    unknown = CliRunner().invoke(
        calibrate_command, ["--config", str(config), "--camera", "nope", "--out", str(tmp_path / "o.png")]
    )
    assert unknown.exit_code == 2 and "no camera 'nope'" in unknown.output and "view-1" in unknown.output

    garbage = tmp_path / "frame.png"
    garbage.write_bytes(b"not a picture")
    unreadable = calibrate(config, tmp_path / "o.png", "--snapshot", str(garbage))
    assert (
        unreadable.exit_code == 2 and str(garbage) in unreadable.output and "cannot read" in unreadable.output
    )

    wrong_size = tmp_path / "big.png"
    cv2.imwrite(str(wrong_size), np.zeros((720, 1280, 3), np.uint8))
    resized = calibrate(config, tmp_path / "o.png", "--snapshot", str(wrong_size))
    assert resized.exit_code == 2 and "resolution_wh" in resized.output

    pixels = write_config(tmp_path, feet_px[chosen], feet_px[chosen])  # floor marks typed in pixels
    as_metres = calibrate(pixels, tmp_path / "o.png")
    assert as_metres.exit_code == 2
    assert "cameras[0].calibration[0]" in as_metres.output and "pixels written as metres" in as_metres.output

    for result in (unknown, unreadable, resized, as_metres):
        assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
