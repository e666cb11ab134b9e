"""On-box re-identification: a frame's detections get an embedder over that frame, and the floor detections
fused from them embed on request.

The network runs only when the tracker asks for a floor detection's appearance (see
`edge.tracking.appearance`), on the crop of one of its boxes in the frame it came from. The frame and the
embeddings stay inside the node's frame loop: neither is stored, logged or published.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge.config import NodeConfig
from edge.tracking import FloorDetections
from edge.tracking.base import EmbedFn
from vision_models.arrays import Float32Array, IndexArray
from vision_models.detections import Detections


class Embedder(Protocol):
    """Appearance embeddings of person boxes in one BGR frame (a re-identification network)."""

    model_id: str
    sha256: str
    """Of the loaded model file, verified against the registry."""

    def embed(self, frame_bgr: npt.NDArray[np.uint8], xyxy: Float32Array) -> Float32Array: ...


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

    def appearance(rows: IndexArray) -> Float32Array:
        t0 = time.perf_counter()
        out = embedder.embed(frame_bgr, xyxy[np.asarray(rows, dtype=np.intp)])
        if timer is not None:
            timer.seconds += time.perf_counter() - t0
            timer.boxes += len(rows)
        return out

    return replace(detections, appearance=appearance)


def embed_on_request(
    floor: FloorDetections,
    detections_by_camera: Mapping[str, Detections],
    embedded: Callable[[int], None],
) -> EmbedFn | None:
    """Appearance of `floor`'s detections on request: each from the camera that sees the person largest
    (tallest box) among those whose `Detections` have an appearance model; a row of NaN for a detection no
    such camera sees. `embedded(n)` is told how many boxes each camera embedded. None when no camera has an
    appearance model."""
    cameras = {c: d for c, d in detections_by_camera.items() if d.appearance is not None}
    if not cameras:
        return None

    def embed(indices: Sequence[int]) -> npt.NDArray[np.float64]:
        wanted: dict[str, list[tuple[int, int]]] = {}
        for k, j in enumerate(indices):
            views = [(c, i) for c, i in floor.sources[j].items() if c in cameras]
            if views:
                c, i = max(views, key=lambda v: float(np.ptp(cameras[v[0]].xyxy[v[1], 1::2])))
                wanted.setdefault(c, []).append((k, i))
        rows: dict[int, npt.NDArray[np.float64]] = {}
        for c, pairs in wanted.items():
            appearance = cameras[c].appearance
            assert appearance is not None
            got = np.asarray(appearance(np.array([i for _, i in pairs], dtype=np.intp)), dtype=np.float64)
            rows.update({k: got[n] for n, (k, _) in enumerate(pairs)})
            embedded(len(pairs))
        dim = next((len(r) for r in rows.values()), 1)
        out = np.full((len(indices), dim), np.nan)
        for k, row in rows.items():
            out[k] = row
        return out

    return embed


__all__ = ["EmbedTimer", "Embedder", "embed_on_request", "load_embedder", "with_appearance"]
