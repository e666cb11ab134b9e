"""Re-identification benchmark on PETS09-S2L1 ground truth: speed, and how well embeddings separate people.

    SHOWROOM_MODEL_DIR=../shared/models .venv/bin/python bench/bench_reid.py [--every 1] [--json PATH]

1. Every annotated person (gt.txt rows with flag 1, boxes x 0.625 to the 480x360 video) of every `--every`-th
   frame is embedded with `ReidEmbedder` (person-reid-0288, 1 thread), one box per call; wall and thread CPU
   ms per crop (the session has one thread, so inference runs in the calling thread).
2. Cosine similarity distributions (mean, std, 5/25/50/75/95th percentiles) of pairs of boxes:
   same person >= 7 frames (1 s at the sequence's 7 fps) apart, also split by time gap (and, outside that
   set, 1-6 frames apart); different people in the same frame or up to 7 frames apart, also the subset
   whose floor positions (world_x, world_y, metres) lie within 1.5 m of each other; and split by crowding:
   a box is "crowded" when it overlaps another ground-truth box of its frame (flag 0 rows included, they
   are people too) by IoU > 0.2, a pair is "crowded" when either box is.
3. ROC AUC of same-person against different-people pairs; rank-1 accuracy of finding a person of frame t
   among everyone annotated in frame t + 7 (1 s later).
4. Preprocessing check (every 5th frame): the same crops fed as raw BGR 0..255 (the product's choice), raw
   RGB, BGR / 255 and RGB / 255.
Prints a report; `--json PATH` also writes every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

REPO = Path(__file__).resolve().parent.parent
PETS = REPO.parent / "shared" / "data" / "pets09_s2l1"
VIDEO = PETS / "vtest_480x360.avi"
GT = PETS / "gt.txt"
os.environ.setdefault("SHOWROOM_MODEL_DIR", str(REPO.parent / "shared" / "models"))
sys.path.insert(0, str(REPO))

from vision_models.evaluation import TruthRows, iou_matrix, load_mot_truth_rows  # noqa: E402
from vision_models.registry import resolve  # noqa: E402
from vision_models.reid import ReidEmbedder  # noqa: E402
from vision_models.video import read_frames  # noqa: E402

GT_SCALE = 480 / 768
FPS = 7  # the sequence's frame rate (the container says 10)
ONE_S = FPS  # frames
CLOSE_M = 1.5
CROWDED_IOU = 0.2
# Same-person pairs by time gap, frames inclusive (under 1 s is outside the main same-person set).
GAP_BINS = ((1, 6, "under_1s"), (7, 34, "1_to_5s"), (35, 139, "5_to_20s"), (140, 10_000, "ge_20s"))
PERCENTILES = (5, 25, 50, 75, 95)

Floats = npt.NDArray[np.float64]
Indices = npt.NDArray[np.intp]
Embeddings = npt.NDArray[np.float32]
Crops = dict[int, list[npt.NDArray[np.uint8]]]
Stats = dict[str, float | int]


def stats(values: npt.ArrayLike) -> Stats:
    """n, mean, std and percentiles of a 1-D sample (NaN when empty)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"n": 0, "mean": float("nan"), "std": float("nan")} | {
            f"p{p}": float("nan") for p in PERCENTILES
        }
    quantiles = np.percentile(v, PERCENTILES)
    out: Stats = {"n": int(v.size), "mean": round(float(v.mean()), 4), "std": round(float(v.std()), 4)}
    return out | {f"p{p}": round(float(q), 4) for p, q in zip(PERCENTILES, quantiles, strict=True)}


def roc_auc(positive: Floats, negative: Floats) -> float:
    """Probability that a positive scores above a negative (ties count half): Mann-Whitney U / (n_p n_n)."""
    scores = np.concatenate([positive, negative])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    n_p, n_n = len(positive), len(negative)
    return float((ranks[:n_p].sum() - n_p * (n_p + 1) / 2.0) / (n_p * n_n))


def crowding(truth: TruthRows) -> Floats:
    """Per ground-truth row: its highest IoU with another box of the same frame (0 when alone)."""
    worst = np.zeros(len(truth.frame), np.float64)
    for frame in np.unique(truth.frame):
        idx = np.flatnonzero(truth.frame == frame)
        if len(idx) < 2:
            continue
        iou = iou_matrix(truth.xyxy[idx], truth.xyxy[idx]).astype(np.float64)
        np.fill_diagonal(iou, 0.0)
        worst[idx] = iou.max(axis=1)
    return worst


def crop_boxes(frame: npt.NDArray[np.uint8], xyxy: npt.NDArray[np.float32]) -> list[npt.NDArray[np.uint8]]:
    """128x256 crops as `ReidEmbedder.embed` makes them (clip, floor/ceil to whole pixels, INTER_LINEAR)."""
    h, w = frame.shape[:2]
    clipped = np.clip(xyxy, 0.0, [w, h, w, h])
    crops: list[npt.NDArray[np.uint8]] = []
    for x1, y1, x2, y2 in clipped:
        crop = frame[int(np.floor(y1)) : int(np.ceil(y2)), int(np.floor(x1)) : int(np.ceil(x2))]
        crops.append(np.asarray(cv2.resize(crop, (128, 256), interpolation=cv2.INTER_LINEAR), np.uint8))
    return crops


def embed_all(
    embedder: ReidEmbedder, truth: TruthRows, every: int
) -> tuple[Indices, Embeddings, Floats, Floats, Crops]:
    """Embed the flag-1 rows of every `every`-th frame (and the frames 1 s after them, for rank-1).

    Returns (row indices, embeddings (N, D), wall ms per crop, CPU ms per crop, crops of every 5th frame).
    """
    wanted = {f for f in range(1, int(truth.frame.max()) + 1) if (f - 1) % every == 0}
    wanted |= {f + ONE_S for f in wanted}
    rows, embs, wall, cpu = [], [], [], []
    crops: Crops = {}
    for index, frame in enumerate(read_frames(VIDEO)):
        number = index + 1
        if number not in wanted:
            continue
        idx = np.flatnonzero((truth.frame == number) & ~truth.ignore)
        for i in idx:
            t_cpu = time.thread_time()
            embs.append(embedder.embed(frame, truth.xyxy[i : i + 1])[0])
            cpu.append((time.thread_time() - t_cpu) * 1000.0)
            wall.append(embedder.last_ms)
            rows.append(i)
        if (number - 1) % 5 == 0:
            crops[number] = crop_boxes(frame, truth.xyxy[idx])
    return np.asarray(rows, np.intp), np.asarray(embs, np.float32), np.asarray(wall), np.asarray(cpu), crops


def pair_sets(
    truth: TruthRows, rows: Indices, emb: Embeddings, crowded: npt.NDArray[np.bool_]
) -> dict[str, Floats]:
    """Cosine similarities of the named pair sets (each unordered pair of boxes once)."""
    frame = truth.frame[rows]
    ids = truth.track_id[rows]
    i, j = np.triu_indices(len(rows), k=1)
    keep = (ids[i] == ids[j]) | (np.abs(frame[i] - frame[j]) <= ONE_S)  # the only pairs any set uses
    i, j = i[keep], j[keep]
    gap = np.abs(frame[i] - frame[j])
    same_id = ids[i] == ids[j]
    sim = (emb @ emb.T)[i, j].astype(np.float64)
    dist_m = np.hypot(*(truth.world_xy[rows[i]] - truth.world_xy[rows[j]]).T)
    any_crowded = crowded[i] | crowded[j]
    same = same_id & (gap >= ONE_S)
    different = ~same_id & (gap <= ONE_S)
    sets = {
        "same_person_ge_1s": sim[same],
        "different_people_within_1s": sim[different],
        "different_people_same_frame": sim[~same_id & (gap == 0)],
        "different_people_within_1s_closer_than_1_5m": sim[different & (dist_m <= CLOSE_M)],
        "different_people_same_frame_closer_than_1_5m": sim[~same_id & (gap == 0) & (dist_m <= CLOSE_M)],
        "same_person_ge_1s_both_clear": sim[same & ~any_crowded],
        "same_person_ge_1s_either_crowded": sim[same & any_crowded],
        "different_people_within_1s_both_clear": sim[different & ~any_crowded],
        "different_people_within_1s_either_crowded": sim[different & any_crowded],
    }
    for low, high, name in GAP_BINS:
        sets[f"same_person_gap_{name}"] = sim[same_id & (gap >= low) & (gap <= high)]
    return sets


def rank1(truth: TruthRows, rows: Indices, emb: Embeddings) -> Stats:
    """Each person of frame t against everyone annotated in frame t + 1 s: is the best match that person?"""
    frame = truth.frame[rows]
    ids = truth.track_id[rows]
    by_frame = {int(f): np.flatnonzero(frame == f) for f in np.unique(frame)}
    hits = queries = multi_hits = multi_queries = 0
    chance = 0.0
    for f, query in by_frame.items():
        gallery = by_frame.get(f + ONE_S)
        if gallery is None:
            continue
        for q in query:
            if ids[q] not in ids[gallery]:
                continue
            best = gallery[int(np.argmax(emb[gallery] @ emb[q]))]
            hit = int(ids[best] == ids[q])
            hits += hit
            queries += 1
            chance += 1.0 / len(gallery)
            if len(gallery) >= 2:
                multi_hits += hit
                multi_queries += 1
    return {
        "queries": queries,
        "rank1": round(hits / max(queries, 1), 4),
        "chance": round(chance / max(queries, 1), 4),
        "queries_with_2_or_more_candidates": multi_queries,
        "rank1_with_2_or_more_candidates": round(multi_hits / max(multi_queries, 1), 4),
    }


def preprocessing_check(truth: TruthRows, crops: Crops) -> dict[str, Stats]:
    """AUC and mean similarities of the same crops under four input conventions."""
    model = resolve("person-reid-0288")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model.path), sess_options=options, providers=["CPUExecutionProvider"])
    variants: dict[str, Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.float32]]] = {
        "raw BGR 0..255 (chosen)": lambda c: c.astype(np.float32),
        "raw RGB 0..255": lambda c: c[:, :, ::-1].astype(np.float32),
        "BGR / 255": lambda c: c.astype(np.float32) / 255.0,
        "RGB / 255": lambda c: c[:, :, ::-1].astype(np.float32) / 255.0,
    }
    ids_list, frames_list, all_crops = [], [], []
    for number, frame_crops in crops.items():
        idx = np.flatnonzero((truth.frame == number) & ~truth.ignore)
        ids_list.append(truth.track_id[idx])
        frames_list.append(np.full(len(idx), number))
        all_crops.extend(frame_crops)
    ids, frames = np.concatenate(ids_list), np.concatenate(frames_list)
    i, j = np.triu_indices(len(ids), k=1)
    gap = np.abs(frames[i] - frames[j])
    same = (ids[i] == ids[j]) & (gap >= ONE_S)
    different = (ids[i] != ids[j]) & (gap <= ONE_S)
    result: dict[str, Stats] = {}
    for name, convert in variants.items():
        name_in = model.entry.input_name
        emb = np.stack([session.run(None, {name_in: convert(c)[None]})[0][0] for c in all_crops])
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        sim = (emb @ emb.T)[i, j].astype(np.float64)
        result[name] = {
            "boxes": len(ids),
            "roc_auc": round(roc_auc(sim[same], sim[different]), 4),
            "same_mean": round(float(sim[same].mean()), 4),
            "different_mean": round(float(sim[different].mean()), 4),
            "different_std": round(float(sim[different].std()), 4),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--every", type=int, default=1, help="Embed every N-th frame (default: all).")
    parser.add_argument("--json", type=Path, help="Also write every figure here as JSON.")
    args = parser.parse_args()
    started = time.perf_counter()
    load_before = os.getloadavg()

    truth = load_mot_truth_rows(GT, scale=GT_SCALE)
    crowded_rows = crowding(truth) > CROWDED_IOU
    embedder = ReidEmbedder("person-reid-0288", threads=1)
    rows, emb, wall_ms, cpu_ms, crops = embed_all(embedder, truth, args.every)
    usable = np.all(np.isfinite(emb), axis=1)
    rows, emb = rows[usable], emb[usable]
    sets = pair_sets(truth, rows, emb, crowded_rows[rows])

    result: dict[str, Any] = {
        "command": " ".join(["bench/bench_reid.py", *sys.argv[1:]]),
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "load_average_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
            "onnxruntime": ort.__version__,
            "opencv": cv2.__version__,
        },
        "model": {
            "id": embedder.model_id,
            "sha256": embedder.sha256,
            "dim": embedder.dim,
            "threads": 1,
            "input": "crop resized to 128x256 (INTER_LINEAR), raw BGR 0..255, NHWC, one crop per call",
        },
        "data": {
            "clip": "PETS09-S2L1 view 1, 480x360, 795 frames, 7 fps",
            "every_nth_frame": args.every,
            "frames_embedded": len(np.unique(truth.frame[rows])),
            "boxes_embedded": len(rows),
            "people": len(np.unique(truth.track_id[rows])),
            "unusable_boxes": int((~usable).sum()),
            "box_height_px_p5_p50_p95": [
                round(float(q), 1)
                for q in np.percentile(truth.xyxy[rows, 3] - truth.xyxy[rows, 1], [5, 50, 95])
            ],
            "crowded_box_share": round(float(crowded_rows[rows].mean()), 4),
        },
        "definitions": {
            "same_person_ge_1s": "same id, frames >= 7 apart (1 s)",
            "different_people_within_1s": "different ids, frames 0-7 apart",
            "closer_than_1_5m": "floor positions (gt world_x, world_y, metres) <= 1.5 m apart",
            "crowded": f"a box overlapping another gt box of its frame by IoU > {CROWDED_IOU}; a pair is "
            "'either_crowded' when one or both boxes are",
            "rank1": "person in frame t matched against everyone in frame t + 7 by highest cosine",
        },
        "speed_ms_per_crop": {"wall": stats(wall_ms), "thread_cpu": stats(cpu_ms)},
        "cosine": {name: stats(values) for name, values in sets.items()},
        "roc_auc": {
            "same_ge_1s_vs_different_within_1s": round(
                roc_auc(sets["same_person_ge_1s"], sets["different_people_within_1s"]), 4
            ),
            "same_ge_1s_vs_different_within_1s_closer_than_1_5m": round(
                roc_auc(sets["same_person_ge_1s"], sets["different_people_within_1s_closer_than_1_5m"]), 4
            ),
            "both_clear": round(
                roc_auc(sets["same_person_ge_1s_both_clear"], sets["different_people_within_1s_both_clear"]),
                4,
            ),
            "either_crowded": round(
                roc_auc(
                    sets["same_person_ge_1s_either_crowded"],
                    sets["different_people_within_1s_either_crowded"],
                ),
                4,
            ),
        },
        "rank1_next_second": rank1(truth, rows, emb),
        "preprocessing_every_5th_frame": preprocessing_check(truth, crops),
    }
    result["bench_wall_s"] = round(time.perf_counter() - started, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
