"""What a re-identification network would say about simulated people: one embedding per box, on request.

Each person has a fixed appearance: a unit vector `normalize(common + r * g)` in 256 dimensions, `g` a random
direction in an `identity_dims`-dimensional subspace (people differ along few directions: clothing colour,
build) and `r` the person's own distinctiveness (log-normal around `identity`: most people look much alike
to the network, a few stand out), so different people's embeddings are far from orthogonal, as a real
network's are. Staff share a uniform: their vectors lean towards one uniform direction. Each box's
embedding is the person's vector plus per-view noise (pose, light, crop) along a few directions, more of it
when a car cuts the box, and mixed with the person in front where their boxes overlap (the crop holds some
of them). False positives get a random appearance. The default scales reproduce the single-crop
similarities the product's re-identification model gives on real footage (BENCHMARKS.md,
"Re-identification": same person 0.88, different people 0.76, AUC 0.81; the model here gives 0.86, 0.74
and 0.80, slightly harder).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edge.sim.scenarios import NoiseModel
from vision_models.arrays import IndexArray
from vision_models.detections import AppearanceFn

DIM = 256
Vec = npt.NDArray[np.float64]


def _unit(v: Vec) -> Vec:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.asarray(v / np.where(norm > 0, norm, 1.0), dtype=np.float64)


class SimAppearance:
    """Appearance vectors of one simulated showroom's people, and noisy per-box embeddings of them.

    Args:
        noise: the fault model (its `reid_*` scales).
        seed: fixes everyone's appearance (the same person looks the same to every camera).
    """

    def __init__(self, noise: NoiseModel, seed: int) -> None:
        self.noise = noise
        self.seed = seed
        base = np.random.default_rng([seed, 4099])
        n_id, n_view = max(noise.reid_identity_dims, 1), max(noise.reid_view_dims, 1)
        q, _ = np.linalg.qr(base.normal(size=(DIM, 1 + n_id + n_view)))
        self._common = np.asarray(q[:, 0], dtype=np.float64)
        self._basis = np.asarray(q[:, 1 : 1 + n_id], dtype=np.float64)
        self._view_basis = np.asarray(q[:, 1 + n_id :], dtype=np.float64)
        self._uniform = _unit(self._basis @ base.normal(size=n_id))
        self._people: dict[tuple[int, bool], Vec] = {}

    def _identity(self, rng: np.random.Generator) -> Vec:
        """A person's deviation from the average appearance: direction times distinctiveness."""
        g = _unit(self._basis @ rng.normal(size=self._basis.shape[1]))
        return g * self.noise.reid_identity * float(np.exp(self.noise.reid_identity_spread * rng.normal()))

    def person(self, pid: int, staff: bool = False) -> Vec:
        """The fixed appearance (unit, (256,)) of person `pid`."""
        key = (pid, staff)
        vec = self._people.get(key)
        if vec is None:
            g = self._identity(np.random.default_rng([self.seed, 4111, pid]))
            if staff:
                g = self.noise.reid_identity * self._uniform + self.noise.reid_staff_individual * g
            vec = _unit(self._common + g)
            self._people[key] = vec
        return vec

    def embedder(
        self,
        pids: npt.NDArray[np.int64],
        staff: npt.NDArray[np.bool_],
        front: npt.NDArray[np.int64],
        overlap: Vec,
        cut: npt.NDArray[np.bool_],
        rng: np.random.Generator,
    ) -> AppearanceFn:
        """The on-request embedder of one frame's boxes.

        Args:
            pids: (K,) person per box; negative for false positives (a random appearance each).
            staff: (K,) the box's person is staff.
            front: (K,) row of the box in front overlapping this one most (-1: none).
            overlap: (K,) fraction of this box covered by that box, 0..1.
            cut: (K,) the box was cut at a car's roof line (a partial view).
            rng: the camera's source of per-view noise.
        """
        noise = self.noise

        def embed(rows: IndexArray) -> npt.NDArray[np.float32]:
            rows = np.asarray(rows, dtype=np.intp)
            vec = np.stack([self._vector(int(pids[k]), bool(staff[k]), rng) for k in rows]).reshape(-1, DIM)
            mixed = [n for n, k in enumerate(rows) if front[k] >= 0 and overlap[k] > 0]
            for n in mixed:
                k = rows[n]
                other = self._vector(int(pids[front[k]]), bool(staff[front[k]]), rng)
                w = noise.reid_overlap_mix * float(overlap[k])
                vec[n] = (1.0 - w) * vec[n] + w * other
            scale = noise.reid_view * np.where(cut[rows], noise.reid_cut_factor, 1.0)
            view = _unit(rng.normal(size=(len(rows), self._view_basis.shape[1])) @ self._view_basis.T)
            return _unit(vec + scale[:, None] * view).astype(np.float32)

        return embed

    def _vector(self, pid: int, staff: bool, rng: np.random.Generator) -> Vec:
        if pid < 0:
            return _unit(self._common + self._identity(rng))
        return self.person(pid, staff)


def overlaps_in_front(xyxy: npt.ArrayLike, bottom_anchor: bool) -> tuple[npt.NDArray[np.int64], Vec]:
    """For each box (K, 4), the box in front of it that covers it most, and the covered fraction.

    In front: nearer the camera, i.e. lower in the image for oblique views (feet further down); for
    top-down views nobody stands in front of anybody."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    k = len(b)
    front = np.full(k, -1, dtype=np.int64)
    frac = np.zeros(k)
    if k < 2 or not bottom_anchor:
        return front, frac
    ix = np.clip(np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]), 0, None)
    area = np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-9)
    cover = ix * iy / area[:, None]
    cover[b[None, :, 3] <= b[:, None, 3]] = 0.0  # only boxes whose feet are lower (nearer) hide this one
    np.fill_diagonal(cover, 0.0)
    best = cover.argmax(axis=1)
    frac = cover[np.arange(k), best]
    front = np.where(frac > 0, best, -1).astype(np.int64)
    return front, frac


__all__ = ["DIM", "SimAppearance", "overlaps_in_front"]
