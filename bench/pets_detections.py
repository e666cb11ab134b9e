"""Person detections of the PETS09-S2L1 clip, computed once and cached (git-ignored) for tracking benches.

Uses the project's default detector (`vision_models.detector.load_detector`, RTMDet-nano). Every tracker in
the bench gets exactly these detections.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
PETS_DIR = SHARED / "data" / "pets09_s2l1"
VIDEO = PETS_DIR / "vtest_480x360.avi"
os.environ.setdefault("SHOWROOM_MODEL_DIR", str(SHARED / "models"))
CACHE = REPO / "bench" / ".cache"

sys.path.insert(0, str(REPO))
from vision_models.detections import Detections, Detector  # noqa: E402
from vision_models.detector import load_detector  # noqa: E402


def read_frames(limit: int | None = None) -> list[npt.NDArray[np.uint8]]:
    cap = cv2.VideoCapture(str(VIDEO))
    frames: list[npt.NDArray[np.uint8]] = []
    while limit is None or len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def make_detector(input_wh: tuple[int, int], score_threshold: float, threads: int = 2) -> Detector:
    return load_detector(
        "rtmdet-nano-person", input_size_wh=input_wh, score_threshold=score_threshold, threads=threads
    )


def pets_detections(
    input_wh: tuple[int, int] = (480, 384), score_threshold: float = 0.1, limit: int | None = None
) -> list[Detections]:
    """Detections of every frame (or the first `limit`), cached under bench/.cache."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"pets_rtmdet_{input_wh[0]}x{input_wh[1]}_s{score_threshold:.2f}.npz"
    if path.exists():
        data = np.load(path)
        counts, boxes, scores = data["counts"], data["boxes"], data["scores"]
        out, start = [], 0
        for n in counts:
            out.append(Detections(boxes[start : start + n], scores[start : start + n], (480, 360)))
            start += n
        return out[:limit] if limit else out
    detector = make_detector(input_wh, score_threshold)
    frames = read_frames()
    out = [detector.detect(f) for f in frames]
    np.savez_compressed(
        path,
        counts=np.array([len(d) for d in out]),
        boxes=np.concatenate([d.xyxy for d in out]),
        scores=np.concatenate([d.confidence for d in out]),
    )
    return out[:limit] if limit else out


if __name__ == "__main__":
    dets = pets_detections()
    print(f"{len(dets)} frames, {sum(len(d) for d in dets)} detections")
