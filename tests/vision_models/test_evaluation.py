"""AP50 / precision / recall against hand-made ground truth with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vision_models.detections import Detections
from vision_models.evaluation import (
    FrameTruth,
    evaluate,
    iou_matrix,
    load_mot_ground_truth,
    load_mot_truth_rows,
)

BOX_A = [10.0, 10.0, 50.0, 110.0]
BOX_B = [200.0, 20.0, 240.0, 120.0]


def truth(*boxes: list[float], ignore: list[bool] | None = None) -> FrameTruth:
    xyxy = np.array(boxes, np.float32).reshape(-1, 4)
    return FrameTruth(xyxy, np.array(ignore or [False] * len(xyxy), bool))


def dets(boxes: list[list[float]], scores: list[float]) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32), (640, 480))


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 1 / 3, 0.0]], atol=1e-6)


def test_perfect_detections_score_one() -> None:
    gt = {1: truth(BOX_A, BOX_B), 2: truth(BOX_A)}
    report = evaluate({1: dets([BOX_A, BOX_B], [0.9, 0.8]), 2: dets([BOX_A], [0.7])}, gt)
    assert report.ap50 == pytest.approx(1.0)
    assert (report.precision, report.recall, report.ground_truth) == (1.0, 1.0, 3)


def test_duplicates_false_positives_and_misses() -> None:
    gt = {1: truth(BOX_A, BOX_B)}
    # A found twice (the lower-scored duplicate is a false positive), B missed, one box on nothing.
    report = evaluate({1: dets([BOX_A, BOX_A, [400, 400, 420, 440]], [0.9, 0.6, 0.5])}, gt)
    assert (report.true_positives, report.false_positives) == (1, 2)
    assert report.recall == 0.5 and report.precision == pytest.approx(1 / 3)
    assert report.ap50 == pytest.approx(0.5)  # precision 1 up to recall 0.5, never more recall


def test_ranking_matters_for_ap_but_not_for_precision() -> None:
    gt = {1: truth(BOX_A, BOX_B)}
    good_first = evaluate({1: dets([BOX_A, [400, 400, 420, 440], BOX_B], [0.9, 0.5, 0.4])}, gt)
    bad_first = evaluate(
        {1: dets([BOX_A, [400, 400, 420, 440], BOX_B], [0.5, 0.9, 0.4])}, gt, score_threshold=0.3
    )
    assert good_first.ap50 == pytest.approx(0.5 + 0.5 * 2 / 3)
    # Interpolated precision at recall 0.5 is the best precision at any recall >= 0.5: 2/3.
    assert bad_first.ap50 == pytest.approx(2 / 3)
    assert good_first.precision == bad_first.precision == pytest.approx(2 / 3)


def test_ignored_regions_are_neither_hits_nor_misses() -> None:
    gt = {1: truth(BOX_A, BOX_B, ignore=[False, True])}
    report = evaluate({1: dets([BOX_A, BOX_B], [0.9, 0.8])}, gt)
    assert (report.true_positives, report.false_positives, report.ground_truth) == (1, 0, 1)


def test_threshold_limits_precision_and_recall_only() -> None:
    gt = {1: truth(BOX_A, BOX_B)}
    report = evaluate({1: dets([BOX_A, BOX_B], [0.9, 0.1])}, gt, score_threshold=0.3)
    assert report.recall == 0.5 and report.ap50 == pytest.approx(1.0)


def test_load_mot_ground_truth_scales_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "gt.txt"
    path.write_text("1,3,100,50,20,40,1,0,0,-1\n1,4,0,0,10,10,0,0,0,-1\n3,3,110,50,20,40,1,0,0,-1\n")
    gt = load_mot_ground_truth(path, scale=0.5)
    assert sorted(gt) == [1, 3]
    np.testing.assert_allclose(gt[1].xyxy, [[50, 25, 60, 45], [0, 0, 5, 5]])
    assert gt[1].ignore.tolist() == [False, True]


def test_load_mot_truth_rows_keeps_ids_and_floor_positions(tmp_path: Path) -> None:
    path = tmp_path / "gt.txt"
    path.write_text("1,3,100,50,20,40,1,-4.15,-7.36,-1\n2,4,0,0,10,10,0,1.5,2.0,-1\n")
    rows = load_mot_truth_rows(path, scale=0.5)
    assert rows.frame.tolist() == [1, 2] and rows.track_id.tolist() == [3, 4]
    np.testing.assert_allclose(rows.xyxy, [[50, 25, 60, 45], [0, 0, 5, 5]])
    assert rows.ignore.tolist() == [False, True]
    np.testing.assert_allclose(rows.world_xy, [[-4.15, -7.36], [1.5, 2.0]])  # world units are not scaled
    short = tmp_path / "short.txt"
    short.write_text("1,3,100,50,20,40,1\n")
    assert np.isnan(load_mot_truth_rows(short).world_xy).all()
