"""Appearance for the tracker: embeddings asked for within a per-step budget, and a track's running mean.

A re-identification network costs milliseconds per box on an edge CPU, so a node cannot embed every box of
every frame. The tracker asks only for the boxes where appearance decides something, in this order:
a hidden person's track being re-linked, and people side by side whose tracks could swap; the first frames
of a new track; then a refresh of each tracked person's appearance every `refresh_s`. At most
`max_per_step` boxes are embedded per time step; what is left over waits for a later step.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from edge.config import ReidConfig
from edge.tracking.base import FloorDetections
from vision_models.arrays import Float64Array

FIRST_SAMPLES = 3
"""A track's first embeddings are averaged evenly; after that each new one moves the mean by `EMA_NEW`."""
EMA_NEW = 0.1


def cosine_distance(a: Float64Array, b: Float64Array) -> float:
    """1 - cosine similarity of two unit vectors (0: the same appearance, 1: unrelated, 2: opposite)."""
    return float(1.0 - float(np.dot(a, b)))


def blend(mean: Float64Array | None, samples: int, new: Float64Array) -> Float64Array:
    """The running appearance after one more embedding `new` (unit rows in, unit row out)."""
    if mean is None or samples <= 0:
        return new.copy()
    w = 1.0 / (samples + 1) if samples < FIRST_SAMPLES else EMA_NEW
    out = (1.0 - w) * mean + w * new
    norm = float(np.linalg.norm(out))
    return out / norm if norm > 0 else new.copy()


class StepAppearance:
    """The embeddings of one time step's floor detections, fetched on request within the step's budget."""

    def __init__(self, config: ReidConfig, detections: FloorDetections) -> None:
        self.budget = config.max_per_step
        self._embed = detections.embed
        self._n = len(detections)
        self._known: dict[int, Float64Array | None] = {}
        self.left = self.budget

    def fetch(self, indices: Iterable[int]) -> None:
        """Embed the given detections (in order of priority) that are not known yet, budget permitting."""
        if self._embed is None:
            return
        wanted = [j for j in dict.fromkeys(indices) if j not in self._known and 0 <= j < self._n]
        wanted = wanted[: max(self.left, 0)]
        if not wanted:
            return
        rows = np.asarray(self._embed(wanted), dtype=np.float64).reshape(len(wanted), -1)
        self.left -= len(wanted)
        for j, row in zip(wanted, rows, strict=True):
            norm = float(np.linalg.norm(row)) if np.isfinite(row).all() else 0.0
            self._known[j] = row / norm if norm > 0 else None

    @property
    def embedded(self) -> int:
        """Boxes embedded at this step so far."""
        return self.budget - self.left

    def get(self, j: int) -> Float64Array | None:
        """Detection j's embedding if it was fetched and could be embedded."""
        return self._known.get(j)


def appearance_cost(
    cost: Float64Array,
    appearances: list[Float64Array | None],
    lost: list[bool],
    det_idx: list[int],
    app: StepAppearance,
    reid: ReidConfig,
) -> Float64Array:
    """The (T, D) motion `cost` with appearance where it decides: a lost track is not re-linked to someone
    who looks like somebody else, and where a detection could go to two tracks (or a track take two
    detections), the pair whose appearances agree is cheaper. Pairs without both appearances keep their
    motion cost.

    Args:
        appearances: per track (T), its person's running appearance, or None while unknown.
        lost: per track, whether it missed its person at the previous step.
        det_idx: the detections (D) the columns stand for.
    """
    if cost.size == 0:
        return cost
    has = np.array([a is not None for a in appearances])
    lost_t = np.array(lost)
    finite = np.isfinite(cost)
    contested = (finite.sum(axis=0)[None, :] > 1) | (finite.sum(axis=1)[:, None] > 1)
    need = finite & has[:, None] & (lost_t[:, None] | contested)
    if not need.any():
        return cost
    first = need & lost_t[:, None]
    order = [int(c) for c in np.nonzero(first.any(axis=0))[0]]
    order += [int(c) for c in np.nonzero(need.any(axis=0))[0]]
    app.fetch(det_idx[c] for c in order)
    cost = cost.copy()
    for r, c in zip(*np.nonzero(need), strict=True):
        embedding = app.get(det_idx[c])
        track_app = appearances[r]
        if embedding is None or track_app is None:
            continue
        d = cosine_distance(track_app, embedding)
        if lost_t[r] and d > reid.same_person_distance:
            cost[r, c] = np.inf
        else:
            cost[r, c] += reid.weight * (d - reid.same_person_distance / 2)
    return cost
