"""Detection accuracy against MOTChallenge ground truth: precision, recall and AP at IoU 0.5.

Matching follows the PASCAL VOC protocol: per frame, detections in decreasing score order take the
unmatched ground-truth box of highest IoU >= the threshold (true positive) or count as false positives;
a detection whose best match is a ground-truth row flagged "ignore" counts as neither. AP is the area under
the all-point interpolated precision/recall curve over all frames pooled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from vision_models.arrays import BoolArray, Float32Array, Float64Array
from vision_models.detections import Detections


@dataclass(frozen=True)
class FrameTruth:
    """Ground-truth boxes of one frame: `xyxy` (N, 4) pixels and `ignore` (N,) flags."""

    xyxy: Float32Array
    ignore: BoolArray


@dataclass(frozen=True)
class TruthRows:
    """Every row of a MOTChallenge 2015 ground-truth file, in file order (N rows).

    Attributes:
        frame: (N,) int64 frame numbers, the first frame is 1.
        track_id: (N,) int64 person ids.
        xyxy: (N, 4) float32 boxes in pixels (the file's pixels multiplied by the loader's `scale`).
        ignore: (N,) bool, True for rows with flag 0.
        world_xy: (N, 2) float64 ground-plane positions from the `world_x, world_y` columns, in the file's
            world unit (metres for PETS09); NaN where the file has no such columns.
    """

    frame: npt.NDArray[np.int64]
    track_id: npt.NDArray[np.int64]
    xyxy: Float32Array
    ignore: BoolArray
    world_xy: Float64Array


def load_mot_truth_rows(path: Path, *, scale: float = 1.0) -> TruthRows:
    """MOTChallenge 2015 ground truth `frame,id,x,y,w,h,flag,world_x,world_y,...` row by row.

    Raises:
        ValueError: fewer than 7 columns.
    """
    rows = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    if rows.shape[1] < 7:
        raise ValueError(f"{path}: expected at least 7 comma-separated columns, got {rows.shape[1]}")
    xyxy = np.concatenate([rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]], axis=1) * scale
    world_xy = rows[:, 7:9] if rows.shape[1] >= 9 else np.full((len(rows), 2), np.nan)
    return TruthRows(
        frame=rows[:, 0].astype(np.int64),
        track_id=rows[:, 1].astype(np.int64),
        xyxy=xyxy.astype(np.float32),
        ignore=rows[:, 6] == 0,
        world_xy=np.ascontiguousarray(world_xy, dtype=np.float64),
    )


def load_mot_ground_truth(path: Path, *, scale: float = 1.0) -> dict[int, FrameTruth]:
    """MOTChallenge ground truth `frame,id,x,y,w,h,flag,...` as boxes per frame, multiplied by `scale`.

    Rows with flag 0 are kept as "ignore" regions. Frames without rows are absent from the result.
    """
    rows = load_mot_truth_rows(path, scale=scale)
    truth: dict[int, FrameTruth] = {}
    for frame in np.unique(rows.frame):
        sel = rows.frame == frame
        truth[int(frame)] = FrameTruth(rows.xyxy[sel], rows.ignore[sel])
    return truth


def load_mot_detections(path: Path) -> dict[int, tuple[Float32Array, Float32Array]]:
    """MOTChallenge detection rows `frame,-1,x,y,w,h,score,...` as (xyxy, scores) per frame."""
    rows = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    result: dict[int, tuple[Float32Array, Float32Array]] = {}
    if rows.size == 0:
        return result
    frames = rows[:, 0].astype(np.int64)
    xyxy = np.concatenate([rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]], axis=1).astype(np.float32)
    scores = rows[:, 6].astype(np.float32)
    for frame in np.unique(frames):
        sel = frames == frame
        result[int(frame)] = (xyxy[sel], scores[sel])
    return result


def iou_matrix(a: Float32Array, b: Float32Array) -> Float32Array:
    """IoU of every box in `a` (N, 4) with every box in `b` (M, 4), xyxy; shape (N, M)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    result: Float32Array = (inter / np.maximum(union, 1e-9)).astype(np.float32)
    return result


@dataclass(frozen=True)
class AccuracyReport:
    """Detection accuracy over a set of frames (precision/recall at `score_threshold`)."""

    ap50: float
    precision: float
    recall: float
    true_positives: int
    false_positives: int
    ground_truth: int
    frames: int
    score_threshold: float

    def summary(self) -> str:
        return (
            f"AP50 {self.ap50:.3f}, precision {self.precision:.3f}, recall {self.recall:.3f} at score >= "
            f"{self.score_threshold:g} ({self.true_positives} TP, {self.false_positives} FP, "
            f"{self.ground_truth} GT, {self.frames} frames)"
        )


def _match_frame(
    xyxy: Float32Array, scores: Float32Array, truth: FrameTruth | None, iou: float
) -> Float32Array:
    """Per detection: 1 true positive, 0 false positive, -1 matched an ignored region (not counted)."""
    outcome = np.zeros(len(scores), np.float32)
    if truth is None or len(truth.xyxy) == 0 or len(scores) == 0:
        return outcome
    order = np.argsort(-scores, kind="stable")
    ious = iou_matrix(xyxy[order], truth.xyxy)
    taken = np.zeros(len(truth.xyxy), bool)
    for rank, det in enumerate(order):
        candidates = np.where(taken | truth.ignore, -1.0, ious[rank])
        best = int(np.argmax(candidates))
        if candidates[best] >= iou:
            taken[best] = True
            outcome[det] = 1.0
        elif truth.ignore.any() and ious[rank][truth.ignore].max() >= iou:
            outcome[det] = -1.0
    return outcome


def evaluate(
    detections: dict[int, Detections] | dict[int, tuple[Float32Array, Float32Array]],
    truth: dict[int, FrameTruth],
    *,
    frames: list[int] | None = None,
    iou: float = 0.5,
    score_threshold: float = 0.3,
) -> AccuracyReport:
    """Accuracy of `detections` (per frame number) against `truth` over `frames` (default: all of truth).

    AP50 uses every detection given (run the detector with a low threshold for a full curve); precision and
    recall count only detections with score >= `score_threshold`.
    """
    frame_list = sorted(truth) if frames is None else frames
    all_scores: list[Float32Array] = []
    all_outcomes: list[Float32Array] = []
    n_truth = 0
    for frame in frame_list:
        item = detections.get(frame)
        if item is None:
            xyxy, scores = np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        elif isinstance(item, Detections):
            xyxy, scores = item.xyxy, item.confidence
        else:
            xyxy, scores = item
        frame_truth = truth.get(frame)
        if frame_truth is not None:
            n_truth += int((~frame_truth.ignore).sum())
        all_scores.append(scores)
        all_outcomes.append(_match_frame(xyxy, scores, frame_truth, iou))
    scores_all = np.concatenate(all_scores) if all_scores else np.zeros(0, np.float32)
    outcome_all = np.concatenate(all_outcomes) if all_outcomes else np.zeros(0, np.float32)
    counted = outcome_all >= 0
    scores_all, tp_all = scores_all[counted], outcome_all[counted]
    order = np.argsort(-scores_all, kind="stable")
    tp_sorted = tp_all[order]
    tp_cum = np.cumsum(tp_sorted)
    fp_cum = np.cumsum(1.0 - tp_sorted)
    recall_curve = tp_cum / max(n_truth, 1)
    precision_curve = tp_cum / np.maximum(tp_cum + fp_cum, 1e-9)
    ap = _average_precision(recall_curve, precision_curve)
    at_threshold = scores_all >= score_threshold
    tp = int(tp_all[at_threshold].sum())
    fp = int(at_threshold.sum()) - tp
    return AccuracyReport(
        ap50=ap,
        precision=tp / max(tp + fp, 1),
        recall=tp / max(n_truth, 1),
        true_positives=tp,
        false_positives=fp,
        ground_truth=n_truth,
        frames=len(frame_list),
        score_threshold=score_threshold,
    )


def _average_precision(recall: Float64Array, precision: Float64Array) -> float:
    """All-point interpolated AP (VOC 2010+): area under the monotone precision envelope."""
    if recall.size == 0:
        return 0.0
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    changed = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[changed + 1] - r[changed]) * p[changed + 1]))
