"""The one detections type every part of the product passes around: person boxes in image pixels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from vision_models.arrays import BoolArray, Float32Array, IndexArray, UInt8Image, read_only

AppearanceFn = Callable[[IndexArray], Float32Array]
"""Appearance embeddings of some of a frame's detections, computed on request (a re-identification
network costs milliseconds per box, so only the boxes that need one are embedded): detection indices (K,)
in, float32 (K, D) unit rows out, a row of NaN where a box cannot be embedded. Embeddings stay on the box."""


class DetectionsError(ValueError):
    """Detections built with wrong shapes, dtypes or values; the message says expected versus actual."""


def _read_only(values: npt.ArrayLike, shape: tuple[int, ...], name: str) -> Float32Array:
    """`values` as an unchangeable float32 array of `shape` (`vision_models.arrays.read_only`)."""
    array = np.asarray(values, dtype=np.float32)
    try:
        reshaped = array.reshape(shape)
    except ValueError as exc:
        expected = "(N, 4)" if len(shape) == 2 else "(N,)"
        raise DetectionsError(f"{name} must have shape {expected}, got {array.shape}") from exc
    # A reshape is a new view even when nothing changes; keep the array itself where it may be kept.
    return read_only(reshaped if reshaped.shape != array.shape else array)


@dataclass(frozen=True)
class Detections:
    """Person detections of one frame; validated where built, and never changed after.

    Attributes:
        xyxy: float32 array (N, 4) of boxes `x1, y1, x2, y2` in the ORIGINAL frame's pixels,
            x1 <= x2, y1 <= y2, all finite. Read-only.
        confidence: float32 array (N,) of scores in [0, 1]. Read-only.
        resolution_wh: (width, height) of the frame the boxes refer to, pixels.
        appearance: embeds detections by index on request (`AppearanceFn`); None when the source has
            no appearance model.
    """

    xyxy: Float32Array
    confidence: Float32Array
    resolution_wh: tuple[int, int]
    appearance: AppearanceFn | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        xyxy = _read_only(self.xyxy, (-1, 4), "xyxy")
        confidence = _read_only(self.confidence, (-1,), "confidence")
        if xyxy.shape[0] != confidence.shape[0]:
            raise DetectionsError(
                f"xyxy has {xyxy.shape[0]} boxes but confidence has {confidence.shape[0]} scores"
            )
        w, h = self.resolution_wh
        if w <= 0 or h <= 0:
            raise DetectionsError(f"resolution_wh must be positive, got {self.resolution_wh}")
        if not np.isfinite(xyxy).all() or not np.isfinite(confidence).all():
            raise DetectionsError("detections contain NaN or infinite values")
        if (xyxy[:, 2] < xyxy[:, 0]).any() or (xyxy[:, 3] < xyxy[:, 1]).any():
            raise DetectionsError("boxes must have x1 <= x2 and y1 <= y2")
        if ((confidence < 0) | (confidence > 1)).any():
            raise DetectionsError("confidence must lie in [0, 1]")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", confidence)

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    @classmethod
    def empty(cls, resolution_wh: tuple[int, int]) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), resolution_wh)

    def __getitem__(self, index: BoolArray | IndexArray | slice) -> Detections:
        appearance = self.appearance
        if appearance is not None:
            original = np.arange(len(self), dtype=np.intp)[index]

            def subset(rows: IndexArray, parent: AppearanceFn = appearance) -> Float32Array:
                return parent(original[np.asarray(rows, dtype=np.intp)])

            appearance = subset
        return Detections(self.xyxy[index], self.confidence[index], self.resolution_wh, appearance)

    def clipped(self) -> Detections:
        """Boxes clipped to the frame."""
        w, h = self.resolution_wh
        xyxy = self.xyxy.copy()
        xyxy[:, [0, 2]] = np.clip(self.xyxy[:, [0, 2]], 0, w).astype(np.float32)
        xyxy[:, [1, 3]] = np.clip(self.xyxy[:, [1, 3]], 0, h).astype(np.float32)
        return Detections(xyxy, self.confidence, self.resolution_wh, self.appearance)

    def anchors(self, anchor: str) -> Float32Array:
        """(N, 2) image points used for floor projection: `bottom_center` (feet) or `center`."""
        x = (self.xyxy[:, 0] + self.xyxy[:, 2]) * 0.5
        if anchor == "bottom_center":
            y = self.xyxy[:, 3]
        elif anchor == "center":
            y = (self.xyxy[:, 1] + self.xyxy[:, 3]) * 0.5
        else:
            raise ValueError(f"anchor must be 'bottom_center' or 'center', got {anchor!r}")
        return np.stack([x, y], axis=1).astype(np.float32)


@dataclass(frozen=True)
class StageTimings:
    """Wall time of one `detect`/`detect_batch` call, milliseconds, split by stage, for `frames` frames."""

    pre_ms: float
    infer_ms: float
    post_ms: float
    frames: int

    @property
    def total_ms(self) -> float:
        return self.pre_ms + self.infer_ms + self.post_ms


@runtime_checkable
class Detector(Protocol):
    """Anything that turns BGR frames (H, W, 3) uint8 into person detections.

    Attributes:
        model_id: registry id of the model.
        sha256: sha256 of the model file, as verified when it was loaded.
        last_timings: stage timings of the latest `detect`/`detect_batch` call.
    """

    model_id: str
    sha256: str
    last_timings: StageTimings

    def detect(self, frame_bgr: UInt8Image) -> Detections: ...

    def detect_batch(self, frames_bgr: list[UInt8Image]) -> list[Detections]: ...


__all__ = [
    "AppearanceFn",
    "Detections",
    "DetectionsError",
    "Detector",
    "StageTimings",
]
