"""MOTChallenge evaluation of tracker output (PETS09-S2L1 by default) with TrackEval: HOTA, CLEAR, Identity.

Follows the MOTChallenge protocol: ground-truth rows with flag 0 are ignored, and tracker boxes that match
an ignored ground-truth box (IoU >= 0.5) are removed before scoring. Boxes are compared in the video's
pixels: PETS09's ground truth (768x576) is scaled by 0.625 to its 480x360 video; another clip's `gt_scale`.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import numpy.typing as npt
import trackeval
from scipy.optimize import linear_sum_assignment

GT_SCALE = 0.625
LINE_X = 384 * GT_SCALE

Rows = dict[int, list[tuple[int, npt.NDArray[np.float64]]]]
"""frame (1-based) -> [(track id, xywh box in the video's pixels)]."""


def load_gt(path: Path, gt_scale: float = GT_SCALE) -> tuple[Rows, Rows]:
    """(counted, ignored) ground-truth rows, boxes scaled by `gt_scale` to the video's pixels."""
    data = np.loadtxt(path, delimiter=",", ndmin=2)
    counted: Rows = defaultdict(list)
    ignored: Rows = defaultdict(list)
    for row in data:
        frame, tid = int(row[0]), int(row[1])
        box = row[2:6] * gt_scale
        (counted if row[6] > 0 else ignored)[frame].append((tid, box))
    return counted, ignored


def _iou(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """IoU of xywh boxes a (N, 4) and b (M, 4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, 0, None], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, 1, None], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.asarray(inter / np.maximum(union, 1e-9))


def evaluate(
    gt_path: Path, tracks: Rows, num_frames: int, *, first_frame: int = 1, gt_scale: float = GT_SCALE
) -> dict[str, float]:
    """HOTA, MOTA, IDF1, ID switches and friends for one tracker's output, scored on frames `first_frame`
    to `num_frames` (1-based, inclusive): ground truth and tracker rows of other frames are left out."""
    gt, ignored = load_gt(gt_path, gt_scale)
    gt_map: dict[int, int] = {}
    tr_map: dict[int, int] = {}
    data: dict[str, object] = {"gt_ids": [], "tracker_ids": [], "similarity_scores": []}
    n_gt = n_tr = 0
    for frame in range(first_frame, num_frames + 1):
        g = gt.get(frame, [])
        t = tracks.get(frame, [])
        ig = ignored.get(frame, [])
        t_boxes = np.array([b for _, b in t]).reshape(-1, 4)
        if ig and len(t):
            ig_boxes = np.array([b for _, b in ig]).reshape(-1, 4)
            g_boxes0 = np.array([b for _, b in g] + [b for _, b in ig]).reshape(-1, 4)
            sim = _iou(g_boxes0, t_boxes)
            rows, cols = linear_sum_assignment(-sim)
            drop = {c for r, c in zip(rows, cols, strict=True) if r >= len(g) and sim[r, c] >= 0.5}
            del ig_boxes
            t = [x for k, x in enumerate(t) if k not in drop]
            t_boxes = np.array([b for _, b in t]).reshape(-1, 4)
        g_boxes = np.array([b for _, b in g]).reshape(-1, 4)
        g_ids = np.array([gt_map.setdefault(i, len(gt_map)) for i, _ in g], dtype=int)
        t_ids = np.array([tr_map.setdefault(i, len(tr_map)) for i, _ in t], dtype=int)
        data["gt_ids"].append(g_ids)  # type: ignore[attr-defined]
        data["tracker_ids"].append(t_ids)  # type: ignore[attr-defined]
        data["similarity_scores"].append(_iou(g_boxes, t_boxes))  # type: ignore[attr-defined]
        n_gt += len(g)
        n_tr += len(t)
    data.update(
        num_timesteps=num_frames - first_frame + 1,
        num_gt_ids=len(gt_map),
        num_tracker_ids=len(tr_map),
        num_gt_dets=n_gt,
        num_tracker_dets=n_tr,
    )
    hota = trackeval.metrics.HOTA().eval_sequence(data)
    clear = trackeval.metrics.CLEAR().eval_sequence(data)
    ident = trackeval.metrics.Identity().eval_sequence(data)
    return {
        "HOTA": float(np.mean(hota["HOTA"])),
        "DetA": float(np.mean(hota["DetA"])),
        "AssA": float(np.mean(hota["AssA"])),
        "MOTA": float(clear["MOTA"]),
        "IDF1": float(ident["IDF1"]),
        "IDSW": int(clear["IDSW"]),
        "FP": int(clear["CLR_FP"]),
        "FN": int(clear["CLR_FN"]),
        "ids": len(tr_map),
    }


def line_crossings(tracks: Rows, line_x: float = LINE_X) -> tuple[int, int]:
    """(left-to-right, right-to-left) crossings of the vertical image line by boxes' bottom centres."""
    last: dict[int, float] = {}
    lr = rl = 0
    for frame in sorted(tracks):
        for tid, box in tracks[frame]:
            x = box[0] + box[2] / 2
            prev = last.get(tid)
            if prev is not None:
                if prev < line_x <= x:
                    lr += 1
                elif prev >= line_x > x:
                    rl += 1
            last[tid] = x
    return lr, rl


def gt_tracks(gt_path: Path, gt_scale: float = GT_SCALE) -> Rows:
    return load_gt(gt_path, gt_scale)[0]
