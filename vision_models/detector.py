"""Person detection with ONNX Runtime: one API for every registered model family.

Frames (BGR uint8, one or a batch from several cameras, any sizes) are letterboxed to the network input,
run through an ONNX Runtime session tuned for small edge CPUs, and decoded into `Detections` in each
frame's original pixels. Family differences (normalisation, NMS in the graph or in code) live in the
registry entry and in small decoder functions (`rtmdet`: NMS in the graph; `yolox`, `yolov8`: raw heads
decoded here), not in the caller.

    detector = load_detector("rtmdet-nano-person", input_size_wh=(480, 384), threads=2)
    dets = detector.detect(frame_bgr)
    print(detector.last_timings.infer_ms)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

from vision_models.arrays import Float32Array, UInt8Image
from vision_models.detections import Detections, StageTimings
from vision_models.registry import ModelError, Postprocess, VerifiedModel, require_task, resolve
from vision_models.session import check_session_io, make_session

log = logging.getLogger(__name__)

# Frames per network call in `detect_batch` (models with a dynamic batch axis); bounds input memory.
MAX_BATCH = 8


@dataclass
class DetectorStats:
    """Cumulative timings since the detector was built (or since `reset()`)."""

    calls: int = 0
    frames: int = 0
    pre_ms: float = 0.0
    infer_ms: float = 0.0
    post_ms: float = 0.0
    rejected_frames: int = 0

    def add(self, timings: StageTimings) -> None:
        self.calls += 1
        self.frames += timings.frames
        self.pre_ms += timings.pre_ms
        self.infer_ms += timings.infer_ms
        self.post_ms += timings.post_ms

    def per_frame_ms(self) -> StageTimings:
        """Mean per-frame timings (zeros before the first frame)."""
        n = max(self.frames, 1)
        return StageTimings(self.pre_ms / n, self.infer_ms / n, self.post_ms / n, 1)

    def reset(self) -> None:
        self.calls = self.frames = self.rejected_frames = 0
        self.pre_ms = self.infer_ms = self.post_ms = 0.0


@dataclass(frozen=True)
class Letterbox:
    """Where a frame landed in the network input: scale applied, and the original size."""

    scale_xy: tuple[float, float]
    resolution_wh: tuple[int, int]


class OnnxDetector:
    """Person detector over one ONNX Runtime session; implements `vision_models.detections.Detector`.

    Attributes:
        model_id: registry id of the loaded model.
        sha256: sha256 of the loaded model file (verified against the registry).
        input_size_wh: network input (width, height) every frame is letterboxed into.
        score_threshold: detections below this confidence are dropped.
        last_timings: stage timings of the latest call (per call, covering all its frames).
        stats: cumulative timings and the count of frames rejected as unusable.
    """

    def __init__(
        self,
        model: VerifiedModel,
        session: ort.InferenceSession,
        *,
        input_size_wh: tuple[int, int] | None = None,
        score_threshold: float = 0.3,
        provider: str = "cpu",
    ) -> None:
        entry = model.entry
        require_task(entry, "detect")
        assert entry.postprocess is not None  # every detector entry has one (ModelEntry checks)
        self.postprocess: Postprocess = entry.postprocess
        size_wh = tuple(input_size_wh) if input_size_wh is not None else entry.input_size_wh
        size_wh = (int(size_wh[0]), int(size_wh[1]))
        entry.check_input_size(size_wh)
        if not 0.0 < score_threshold < 1.0:
            raise ModelError(f"score_threshold must lie in (0, 1), got {score_threshold}")
        check_session_io(entry, session)
        self.entry = entry
        self.model_id = entry.id
        self.sha256 = model.sha256
        self.path = model.path
        self.provider = provider
        self.input_size_wh: tuple[int, int] = size_wh
        self.score_threshold = float(score_threshold)
        self.session = session
        self.stats = DetectorStats()
        self.max_batch = MAX_BATCH
        self.last_timings = StageTimings(0.0, 0.0, 0.0, 0)
        # Normalisation as one 256-entry float table per channel: a table lookup per pixel is cheaper than
        # subtract-and-scale, and writes each channel plane straight into the NCHW input.
        pre = entry.preprocess
        levels = np.arange(256, dtype=np.float32)
        self._luts = [
            ((levels - np.float32(pre.mean_bgr[c])) / np.float32(pre.std_bgr[c])).reshape(1, 256)
            for c in range(3)
        ]
        self._pad = [float(lut[0, pre.pad_value]) for lut in self._luts]
        # Network channel of each frame channel (B, G, R): the same for BGR networks, reversed for RGB ones.
        self._channel_of = (0, 1, 2) if pre.channel_order == "bgr" else (2, 1, 0)
        self._buffer: Float32Array | None = None
        self._yolox_grid = _yolox_grid(size_wh, self.postprocess.strides) if entry.family == "yolox" else None
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        w, h = self.input_size_wh
        return f"OnnxDetector({self.model_id}, {w}x{h}, sha256={self.sha256[:12]}, {self.provider})"

    # -- public API -------------------------------------------------------------------------------------

    def detect(self, frame_bgr: UInt8Image) -> Detections:
        """Person detections of one BGR frame (H, W, 3) uint8, boxes in the frame's pixels.

        Grey (H, W) / (H, W, 1) and BGRA frames are converted; an unusable frame (empty, wrong dtype or
        channel count) gives empty detections and is counted in `stats.rejected_frames`.
        """
        return self.detect_batch([frame_bgr])[0]

    def detect_batch(self, frames_bgr: list[UInt8Image]) -> list[Detections]:
        """Detections for several frames (for example one per camera; sizes may differ), in order."""
        t0 = time.perf_counter()
        results: list[Detections | None] = [None] * len(frames_bgr)
        usable: list[tuple[int, UInt8Image]] = []
        for i, frame in enumerate(frames_bgr):
            image, problem = _as_bgr(frame)
            if image is None:
                results[i] = Detections.empty(_resolution_or_one(frame))
                self._reject(problem)
            else:
                usable.append((i, image))
        pre_ms = infer_ms = post_ms = 0.0
        t1 = t0
        if usable:
            step = min(len(usable), self.max_batch) if self.entry.dynamic_batch else 1
            for start in range(0, len(usable), step):
                chunk = usable[start : start + step]
                blob, boxes = self.preprocess([image for _, image in chunk], reuse_buffer=True)
                t1 = time.perf_counter()
                outputs = self.session.run(None, {self.entry.input_name: blob})
                t2 = time.perf_counter()
                for k, (i, _) in enumerate(chunk):
                    results[i] = self._postprocess(outputs, k, boxes[k])
                t3 = time.perf_counter()
                pre_ms += (t1 - t0) * 1e3
                infer_ms += (t2 - t1) * 1e3
                post_ms += (t3 - t2) * 1e3
                t0 = t3
        else:
            pre_ms = (time.perf_counter() - t0) * 1e3
        self.last_timings = StageTimings(pre_ms, infer_ms, post_ms, len(frames_bgr))
        self.stats.add(self.last_timings)
        return [r if r is not None else Detections.empty((1, 1)) for r in results]

    # -- stages -----------------------------------------------------------------------------------------

    def preprocess(
        self, images: list[UInt8Image], *, reuse_buffer: bool = False
    ) -> tuple[Float32Array, list[Letterbox]]:
        """Letterbox each image into the input size and normalise into one NCHW float32 batch.

        With `reuse_buffer` the batch is written into a buffer kept by the detector (no allocation and no
        page faults per frame); it is then valid only until the next call.
        """
        in_w, in_h = self.input_size_wh
        shape = (len(images), 3, in_h, in_w)
        if not reuse_buffer:
            blob = np.empty(shape, np.float32)
        elif self._buffer is not None and self._buffer.shape == shape:
            blob = self._buffer
        else:
            blob = self._buffer = np.empty(shape, np.float32)
        boxes: list[Letterbox] = []
        for b, image in enumerate(images):
            h, w = image.shape[:2]
            scale = min(in_w / w, in_h / h)
            new_w = min(in_w, max(1, round(w * scale)))
            new_h = min(in_h, max(1, round(h * scale)))
            if (new_w, new_h) != (w, h):
                image = np.asarray(
                    cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR), np.uint8
                )
            for c, channel in enumerate(cv2.split(image)):
                n = self._channel_of[c]
                region = blob[b, n, :new_h, :new_w]
                written = cv2.LUT(channel, self._luts[c], dst=region)
                if not np.shares_memory(written, region):  # OpenCV could not write in place
                    region[...] = written
                blob[b, n, new_h:, :] = self._pad[c]  # letterbox padding at the bottom and right
                blob[b, n, :new_h, new_w:] = self._pad[c]
            boxes.append(Letterbox(scale_xy=(new_w / w, new_h / h), resolution_wh=(w, h)))
        return blob, boxes

    def _postprocess(self, outputs: list[Any], index: int, box: Letterbox) -> Detections:
        if self.entry.family == "rtmdet":
            xyxy, scores = _decode_rtmdet(outputs, index, self.score_threshold, self.postprocess)
        elif self.entry.family == "yolov8":
            xyxy, scores = _decode_yolov8(outputs[0][index], self.score_threshold, self.postprocess)
        else:
            assert self._yolox_grid is not None
            xyxy, scores = _decode_yolox(
                outputs[0][index], self._yolox_grid, self.score_threshold, self.postprocess
            )
        if xyxy.shape[0] == 0:
            return Detections.empty(box.resolution_wh)
        w, h = box.resolution_wh
        sx, sy = box.scale_xy
        xyxy = xyxy * np.array([1.0 / sx, 1.0 / sy, 1.0 / sx, 1.0 / sy], np.float32)
        np.clip(xyxy[:, 0::2], 0, w, out=xyxy[:, 0::2])
        np.clip(xyxy[:, 1::2], 0, h, out=xyxy[:, 1::2])
        keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        return Detections(xyxy[keep], np.clip(scores[keep], 0.0, 1.0), box.resolution_wh)

    def _reject(self, problem: str) -> None:
        self.stats.rejected_frames += 1
        if problem not in self._warned:
            self._warned.add(problem)
            log.warning("%s: unusable frame (%s); returning no detections", self.model_id, problem)


def _as_bgr(frame: Any) -> tuple[UInt8Image | None, str]:
    """A contiguous (H, W, 3) uint8 view of `frame`, or None and the reason it cannot be used."""
    if not isinstance(frame, np.ndarray):
        return None, f"not an array: {type(frame).__name__}"
    if frame.dtype != np.uint8:
        return None, f"dtype {frame.dtype}, expected uint8"
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim not in (2, 3) or frame.shape[0] == 0 or frame.shape[1] == 0:
        return None, f"shape {frame.shape}, expected (H, W, 3)"
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), ""
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR), ""
    if frame.shape[2] != 3:
        return None, f"{frame.shape[2]} channels, expected 3"
    return frame, ""


def _resolution_or_one(frame: Any) -> tuple[int, int]:
    shape: tuple[int, ...] = tuple(getattr(frame, "shape", ()))
    if len(shape) >= 2:
        return max(int(shape[1]), 1), max(int(shape[0]), 1)
    return 1, 1


def _decode_rtmdet(
    outputs: list[Any], index: int, threshold: float, post: Any
) -> tuple[Float32Array, Float32Array]:
    """Final boxes from a graph with NMS inside: `dets` [B, N, 5] (input pixels + score), `labels` [B, N]."""
    dets = outputs[0][index]
    labels = outputs[1][index]
    keep = (dets[:, 4] >= threshold) & (labels == post.person_class)
    kept = dets[keep]
    return kept[:, :4].astype(np.float32, copy=True), kept[:, 4].astype(np.float32, copy=True)


def _yolox_grid(size_wh: tuple[int, int], strides: tuple[int, ...]) -> Float32Array:
    """(A, 3) array of grid x, grid y and stride for every YOLOX anchor point, in output order."""
    w, h = size_wh
    parts = []
    for stride in strides:
        gw, gh = w // stride, h // stride
        ys, xs = np.meshgrid(np.arange(gh, dtype=np.float32), np.arange(gw, dtype=np.float32), indexing="ij")
        parts.append(np.stack([xs.ravel(), ys.ravel(), np.full(gw * gh, stride, np.float32)], axis=1))
    return np.concatenate(parts).astype(np.float32)


def _decode_yolox(
    raw: Float32Array, grid: Float32Array, threshold: float, post: Postprocess
) -> tuple[Float32Array, Float32Array]:
    """Person boxes from a raw YOLOX head [A, 5 + C]: grid decode, objectness x class score, NMS."""
    scores = raw[:, 4] * raw[:, 5 + post.person_class]
    candidates = np.flatnonzero(scores >= threshold)
    if candidates.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    p = raw[candidates, :4]
    g = grid[candidates]
    stride = g[:, 2:3]
    centre = (p[:, :2] + g[:, :2]) * stride
    size = np.exp(np.minimum(p[:, 2:4], 20.0)) * stride
    xywh = np.concatenate([centre - size * 0.5, size], axis=1)
    return _nms_xywh(xywh, scores[candidates], threshold, post)


def _decode_yolov8(
    raw: Float32Array, threshold: float, post: Postprocess
) -> tuple[Float32Array, Float32Array]:
    """Person boxes from an Ultralytics YOLOv8/YOLO11 head [4 + C, A] (cx, cy, w, h in input pixels, then
    one score per class, no objectness): threshold, NMS."""
    scores = raw[4 + post.person_class]
    candidates = np.flatnonzero(scores >= threshold)
    if candidates.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    cxcywh = raw[:4, candidates].T
    xywh = np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] * 0.5, cxcywh[:, 2:]], axis=1)
    return _nms_xywh(xywh, scores[candidates], threshold, post)


def _nms_xywh(
    xywh: Float32Array, scores: Float32Array, threshold: float, post: Postprocess
) -> tuple[Float32Array, Float32Array]:
    """Boxes (K, 4) x, y, w, h and their scores kept by NMS at `post.nms_iou`, as xyxy."""
    kept = cv2.dnn.NMSBoxes(
        xywh.tolist(), scores.tolist(), threshold, post.nms_iou, top_k=post.max_detections
    )
    keep = np.asarray(kept, dtype=np.intp).reshape(-1)
    xywh = xywh[keep]
    xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1).astype(np.float32)
    return xyxy, scores[keep].astype(np.float32)


def load_detector(
    model_id: str | None = None,
    *,
    input_size_wh: tuple[int, int] | None = None,
    score_threshold: float = 0.3,
    threads: int = 2,
    provider: str = "cpu",
) -> OnnxDetector:
    """Find, verify and open a registered model as a person detector.

    Args:
        model_id: registry id (default model when None); `<id>-int8` for a locally quantised variant.
        input_size_wh: network input (width, height); the model's default when None. Must be a multiple of
            32; fixed-size models accept only their native size.
        score_threshold: minimum confidence kept, in (0, 1).
        threads: ONNX Runtime intra-op threads.
        provider: execution provider: cpu (default), cuda, tensorrt, openvino or coreml.

    Raises:
        ModelError (and subclasses): unknown id, missing file, checksum mismatch, not ONNX, inputs/outputs
            that differ from the registry entry, unsupported input size or provider.
    """
    model = resolve(model_id)
    return build_detector(
        model,
        input_size_wh=input_size_wh,
        score_threshold=score_threshold,
        threads=threads,
        provider=provider,
    )


def build_detector(
    model: VerifiedModel,
    *,
    input_size_wh: tuple[int, int] | None = None,
    score_threshold: float = 0.3,
    threads: int = 2,
    provider: str = "cpu",
) -> OnnxDetector:
    """A detector for an already verified model file (see `load_detector`)."""
    if input_size_wh is not None:
        model.entry.check_input_size((int(input_size_wh[0]), int(input_size_wh[1])))
    session = make_session(model, threads=threads, provider=provider)
    detector = OnnxDetector(
        model, session, input_size_wh=input_size_wh, score_threshold=score_threshold, provider=provider
    )
    log.info("loaded %r from %s", detector, model.path)
    return detector
