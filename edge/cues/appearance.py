"""On-box re-identification: a frame's detections get an embedder over that frame.

The network runs only when the tracker asks for a box's appearance (see `edge.tracking.appearance`), on the
crop of that box in the frame it came from. The frame and the embeddings stay inside the node's frame loop:
neither is stored, logged or published.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge.config import NodeConfig
from vision_models.detections import Detections, FloatArray, IndexArray


class Embedder(Protocol):
    """Appearance embeddings of person boxes in one BGR frame (a re-identification network)."""

    model_id: str

    def embed(self, frame_bgr: npt.NDArray[np.uint8], xyxy: FloatArray) -> FloatArray: ...


class EmbedTimer:
    """Wall time and box count of the embeddings a node's frame loop asked for."""

    def __init__(self) -> None:
        self.boxes = 0
        self.seconds = 0.0


def load_embedder(config: NodeConfig) -> Embedder | None:
    """The configured re-identification model (registry, checksum verified), or None when it is off."""
    reid = config.tracker.reid
    if reid is None:
        return None
    from vision_models.reid import ReidEmbedder

    return ReidEmbedder(reid.model, threads=reid.threads)


def with_appearance(
    detections: Detections,
    frame_bgr: npt.NDArray[np.uint8],
    embedder: Embedder,
    timer: EmbedTimer | None = None,
) -> Detections:
    """`detections` (of `frame_bgr`) able to embed their boxes on request."""
    xyxy = detections.xyxy

    def appearance(rows: IndexArray) -> FloatArray:
        t0 = time.perf_counter()
        out = embedder.embed(frame_bgr, xyxy[np.asarray(rows, dtype=np.intp)])
        if timer is not None:
            timer.seconds += time.perf_counter() - t0
            timer.boxes += len(rows)
        return out

    return replace(detections, appearance=appearance)


__all__ = ["EmbedTimer", "Embedder", "load_embedder", "with_appearance"]
