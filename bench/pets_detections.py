"""Person detections of the PETS09-S2L1 clip, computed once and cached (git-ignored) for tracking benches.

Uses the project's detector (`vision_models.detector.load_detector`) when it is installed; otherwise runs
RTMDet-nano with ONNX Runtime directly, with the pre- and post-processing of `../shared/models/MODELS.md`
(BGR, mean/std normalisation, keep-ratio resize, pad 114 at bottom/right, NMS inside the graph).
Every tracker in the bench gets exactly these detections.
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
MODEL_DIR = Path(os.environ.get("SHOWROOM_MODEL_DIR", str(SHARED / "models")))
CACHE = REPO / "bench" / ".cache"

sys.path.insert(0, str(REPO))
from vision_models.detections import Detections  # noqa: E402


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


class _OnnxRtmdet:
    """RTMDet-nano person detector straight on ONNX Runtime (used until the project's detector exists)."""

    def __init__(self, input_wh: tuple[int, int], score_threshold: float, threads: int = 2) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(MODEL_DIR / "rtmdet_nano_person.onnx"), opts, providers=["CPUExecutionProvider"]
        )
        self.input_wh = input_wh
        self.score_threshold = score_threshold
        self.mean = np.array([103.53, 116.28, 123.675], np.float32)
        self.std = np.array([57.375, 57.12, 58.395], np.float32)

    def detect(self, frame: npt.NDArray[np.uint8]) -> Detections:
        h, w = frame.shape[:2]
        iw, ih = self.input_wh
        scale = min(iw / w, ih / h)
        nw, nh = round(w * scale), round(h * scale)
        canvas = np.full((ih, iw, 3), 114, np.uint8)
        canvas[:nh, :nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
        blob = ((canvas.astype(np.float32) - self.mean) / self.std).transpose(2, 0, 1)[None]
        dets, labels = self.session.run(None, {"input": blob})
        d = dets[0]
        keep = (d[:, 4] >= self.score_threshold) & (labels[0] == 0)
        d = d[keep]
        xyxy = d[:, :4] / scale
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, w)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, h)
        return Detections(xyxy.astype(np.float32), d[:, 4].astype(np.float32), (w, h))


def make_detector(input_wh: tuple[int, int], score_threshold: float, threads: int = 2) -> object:
    try:
        from vision_models.detector import load_detector  # type: ignore[import-not-found]
    except ImportError:
        return _OnnxRtmdet(input_wh, score_threshold, threads)
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
    out = [detector.detect(f) for f in frames]  # type: ignore[attr-defined]
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
