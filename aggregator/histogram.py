"""Duration histograms: fixed geometric bins, so medians over any period come from summed daily rows.

Bin 0 holds [0, 1) s; bins 1..N-1 split [1 s, 24 h] geometrically (about 6% wide), the last bin also
takes anything longer. A median read from merged histograms is interpolated inside its bin, so it is
within half a bin (about 3%) of the exact median; single days also keep their exact median.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

N_BINS = 200
_EDGES_S: npt.NDArray[np.float64] = np.concatenate(([0.0], np.geomspace(1.0, 86_400.0, N_BINS)))
"""Lower edges of each bin plus the upper edge of the last one: N_BINS + 1 values, seconds."""


def bin_of(seconds: npt.ArrayLike) -> npt.NDArray[np.intp]:
    """Bin index of each duration (seconds >= 0)."""
    idx = np.searchsorted(_EDGES_S, np.asarray(seconds, dtype=np.float64), side="right") - 1
    return np.clip(idx, 0, N_BINS - 1)


def histogram(seconds: Iterable[float]) -> npt.NDArray[np.uint32]:
    """Counts per bin of the given durations."""
    values = np.fromiter(seconds, dtype=np.float64)
    return np.bincount(bin_of(values), minlength=N_BINS).astype(np.uint32)


def encode(hist: npt.NDArray[np.uint32]) -> bytes:
    """Compact blob (zlib of little-endian uint32 counts)."""
    return zlib.compress(hist.astype("<u4").tobytes(), 6)


def decode(blob: bytes | None) -> npt.NDArray[np.uint32]:
    """Counts from `encode`; zeros for None."""
    if not blob:
        return np.zeros(N_BINS, dtype=np.uint32)
    return np.frombuffer(zlib.decompress(blob), dtype="<u4").astype(np.uint32)


def median(hist: npt.NDArray[np.uint32] | npt.NDArray[np.int64]) -> float | None:
    """Median duration, seconds, interpolated inside its bin; None for an empty histogram."""
    total = int(hist.sum())
    if total == 0:
        return None
    cum = np.cumsum(hist)
    half = total / 2.0
    i = int(np.searchsorted(cum, half, side="left"))
    before = float(cum[i - 1]) if i > 0 else 0.0
    frac = (half - before) / float(hist[i])
    lo, hi = float(_EDGES_S[i]), float(_EDGES_S[i + 1])
    return lo + frac * (hi - lo)
