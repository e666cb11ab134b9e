"""Calibration accuracy on PETS09-S2L1 against its ground truth, with 6, 8 and 12 marks.

Marks are ground-truth foot points (bottom centre of boxes fully inside the frame, in the 480 x 360 video's
pixels) against their world positions (+ (25, 20) m, as examples/pets09.yaml places the plan), spread over
the image by farthest-point sampling. For each count: the calibration check's verdict and held-out
(leave-one-out) errors of the marks, and the accepted fit's error on every other ground-truth foot point.

    .venv/bin/python bench/bench_calibration.py [--pets ../shared/data/pets09_s2l1] [--counts 6 8 12]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edge.config import Calibration
from edge.floor.calibration_check import check_calibration

REPO = Path(__file__).resolve().parents[1]
OFFSET_M = np.array([25.0, 20.0])


def ground_truth(pets_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    gt = np.loadtxt(pets_dir / "gt.txt", delimiter=",")
    x, y, w, h = gt[:, 2], gt[:, 3], gt[:, 4], gt[:, 5]
    keep = (gt[:, 6] > 0) & (x >= 2) & (y >= 2) & (x + w <= 766) & (y + h <= 574)
    gt = gt[keep]
    feet_px = np.column_stack([gt[:, 2] + gt[:, 4] / 2, gt[:, 3] + gt[:, 5]]) * 0.625
    return feet_px, gt[:, 7:9] + OFFSET_M


def spread(feet_px: np.ndarray, n: int) -> list[int]:
    chosen = [int(np.argmin(np.linalg.norm(feet_px - (240, 220), axis=1)))]
    dist = np.linalg.norm(feet_px - feet_px[chosen[0]], axis=1)
    for _ in range(n - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(feet_px - feet_px[nxt], axis=1))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pets", type=Path, default=REPO.parent / "shared" / "data" / "pets09_s2l1")
    parser.add_argument("--counts", type=int, nargs="+", default=[6, 8, 12])
    args = parser.parse_args()
    feet_px, floor_m = ground_truth(args.pets)
    print(f"{len(feet_px)} usable ground-truth foot points")
    print(
        "| marks | verdict | marks' held-out mean / max (m) | other GT points | mean (m) | p95 (m) "
        "| max (m) |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n in args.counts:
        chosen = spread(feet_px, n)
        cal = Calibration(image_points_px=feet_px[chosen].tolist(), floor_points_m=floor_m[chosen].tolist())
        report = check_calibration(cal, camera_id="view-1", resolution_wh=(480, 360), floor_size_m=(50, 50))
        assert report.homography is not None
        others = np.setdiff1d(np.arange(len(feet_px)), chosen)
        homog = np.hstack([feet_px[others], np.ones((len(others), 1))]) @ report.homography.T
        errors = np.linalg.norm(homog[:, :2] / homog[:, 2:3] - floor_m[others], axis=1)
        print(
            f"| {n} | {report.verdict} | {report.held_out_mean_m:.3f} / {report.held_out_max_m:.3f} | "
            f"{len(others)} | {errors.mean():.3f} | {np.percentile(errors, 95):.3f} | {errors.max():.3f} |"
        )


if __name__ == "__main__":
    main()
