"""Person re-identification on the box: an appearance embedding for each person box of a frame.

Each box is cut out of the frame, resized to the network input without keeping its ratio, and run through a
registered re-identification model (`task == "reid"` in `vision_models.registry`). Rows are L2-normalised,
so the cosine similarity of two people is the dot product of their rows. Embeddings are for use on the box
only (re-linking a track after an occlusion, a hand-off between cameras); they never leave it.

    embedder = ReidEmbedder()                     # person-reid-0288, sha256 verified
    emb = embedder.embed(frame_bgr, detections.xyxy)   # (K, 256) float32, unit rows
    similarity = emb @ emb.T
"""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np

from vision_models.arrays import Float32Array, UInt8Image
from vision_models.registry import require_task, resolve
from vision_models.session import check_session_io, make_session

log = logging.getLogger(__name__)

DEFAULT_REID_MODEL_ID = "person-reid-0288"

# A clipped box narrower or shorter than this (pixels) holds no usable appearance: its row is NaN.
MIN_BOX_SIDE_PX = 2.0


class ReidEmbedder:
    """Appearance embeddings of person boxes with a registered re-identification model (ONNX Runtime, CPU).

    Attributes:
        model_id: registry id of the loaded model.
        sha256: sha256 of the loaded model file (verified against the registry).
        dim: embedding length D (256 for person-reid-0288).
        input_size_wh: network input (width, height) each crop is resized to, pixels (128, 256).
        last_ms: wall time of the latest `embed` call, milliseconds (crop, resize, inference, normalise).
    """

    def __init__(self, model_id: str = DEFAULT_REID_MODEL_ID, threads: int = 1) -> None:
        """Find, verify and open `model_id` on `threads` ONNX Runtime intra-op threads.

        Raises:
            ModelError (and subclasses): unknown id, not a re-identification model, missing file, checksum
                mismatch, not ONNX, inputs/outputs that differ from the registry entry, bad thread count.
        """
        model = resolve(model_id)
        entry = model.entry
        require_task(entry, "reid")
        assert entry.embedding_dim is not None  # every reid entry has one (ModelEntry checks)
        session = make_session(model, threads=threads, provider="cpu")
        check_session_io(entry, session)
        self.model_id: str = entry.id
        self.sha256: str = model.sha256
        self.dim: int = entry.embedding_dim
        self.input_size_wh: tuple[int, int] = entry.input_size_wh
        self.last_ms: float = 0.0
        self._session = session
        self._input_name = entry.input_name
        pre = entry.preprocess
        self._mean = np.asarray(pre.mean_bgr, np.float32)
        self._inv_std = 1.0 / np.asarray(pre.std_bgr, np.float32)
        self._raw = bool(np.all(self._mean == 0.0) and np.all(self._inv_std == 1.0))
        log.info("loaded %s (sha256 %s) from %s", entry.id, model.sha256[:12], model.path)

    def __repr__(self) -> str:
        return f"ReidEmbedder({self.model_id}, dim={self.dim}, sha256={self.sha256[:12]})"

    def embed(self, frame_bgr: UInt8Image, xyxy: Float32Array) -> Float32Array:
        """Embeddings of the people in `xyxy`, one unit-length row per box.

        Args:
            frame_bgr: the frame, BGR uint8 (H, W, 3).
            xyxy: person boxes (K, 4) `x1, y1, x2, y2` in that frame's pixels, float; K may be 0.

        Returns:
            float32 (K, dim): row k is box k's embedding, L2-normalised (compare rows by dot product =
            cosine similarity). Boxes are clipped to the frame first; a box whose clipped width or height is
            under 2 px (outside the frame, empty or inverted) gets a row of NaN, so rows stay aligned with
            boxes and a NaN similarity marks a comparison that cannot be made.

        Raises:
            ValueError: `frame_bgr` is not uint8 (H, W, 3) with H, W >= 1, or `xyxy` is not a finite (K, 4)
                array of numbers.
        """
        t0 = time.perf_counter()
        frame = _checked_frame(frame_bgr)
        boxes = _checked_boxes(xyxy)
        out = np.full((boxes.shape[0], self.dim), np.nan, dtype=np.float32)
        h, w = frame.shape[:2]
        clipped = boxes.copy()
        np.clip(clipped[:, 0::2], 0.0, float(w), out=clipped[:, 0::2])
        np.clip(clipped[:, 1::2], 0.0, float(h), out=clipped[:, 1::2])
        usable = ((clipped[:, 2] - clipped[:, 0]) >= MIN_BOX_SIDE_PX) & (
            (clipped[:, 3] - clipped[:, 1]) >= MIN_BOX_SIDE_PX
        )
        for k in np.flatnonzero(usable):
            x1, y1, x2, y2 = clipped[k]
            # Whole pixels that the box touches: floor the top-left corner, ceil the bottom-right one.
            crop = frame[int(np.floor(y1)) : int(np.ceil(y2)), int(np.floor(x1)) : int(np.ceil(x2))]
            out[k] = self._embed_crop(crop)
        self.last_ms = (time.perf_counter() - t0) * 1000.0
        return out

    def _embed_crop(self, crop: UInt8Image) -> Float32Array:
        """Unit-length embedding (dim,) of one BGR crop of any size."""
        resized = cv2.resize(crop, self.input_size_wh, interpolation=cv2.INTER_LINEAR)
        blob = resized.astype(np.float32)
        if not self._raw:
            blob = (blob - self._mean) * self._inv_std
        raw = self._session.run(None, {self._input_name: blob[np.newaxis]})[0]
        vector = np.asarray(raw, dtype=np.float32).reshape(self.dim)
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm == 0.0:
            return np.full(self.dim, np.nan, dtype=np.float32)
        return vector / np.float32(norm)


def _checked_frame(frame_bgr: object) -> UInt8Image:
    if not isinstance(frame_bgr, np.ndarray):
        raise ValueError(f"frame_bgr: expected a numpy uint8 array (H, W, 3), got {type(frame_bgr).__name__}")
    if frame_bgr.dtype != np.uint8:
        raise ValueError(f"frame_bgr: expected dtype uint8, got {frame_bgr.dtype}")
    shape = frame_bgr.shape
    if frame_bgr.ndim != 3 or shape[2] != 3 or shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"frame_bgr: expected shape (H, W, 3) with H, W >= 1, got {shape}")
    return frame_bgr


def _checked_boxes(xyxy: object) -> Float32Array:
    boxes = np.asarray(xyxy)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"xyxy: expected shape (K, 4), got {boxes.shape}")
    if boxes.size and not (np.issubdtype(boxes.dtype, np.floating) or np.issubdtype(boxes.dtype, np.integer)):
        raise ValueError(f"xyxy: expected numbers (float32 pixels), got dtype {boxes.dtype}")
    boxes = boxes.astype(np.float32, copy=False) if boxes.size else np.zeros((0, 4), np.float32)
    if not np.all(np.isfinite(boxes)):
        raise ValueError("xyxy: expected finite pixel coordinates, got NaN or infinity")
    return boxes
