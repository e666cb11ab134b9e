"""Duration histograms: fixed geometric bins, so medians over any period come from summed daily rows.

Bin 0 holds [0, 1) s; bins 1..N-1 split [1 s, 24 h] geometrically (about 6% wide), the last bin also
takes anything longer. A median read from merged histograms is interpolated inside its bin, so it is
within half a bin (about 3%) of the exact median; single days also keep their exact median.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterable, Sequence

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


_SPARSE = np.dtype([("bin", "<u1"), ("n", "<u4")])
_SPARSE_TAG = b"S"


def encode(hist: npt.NDArray[np.uint32]) -> bytes:
    """Compact blob: 'S' then (bin uint8, count uint32) for each non-empty bin."""
    nz = np.flatnonzero(hist)
    out = np.empty(len(nz), dtype=_SPARSE)
    out["bin"] = nz
    out["n"] = hist[nz]
    return _SPARSE_TAG + out.tobytes()


def encode_rows(hists: npt.NDArray[np.integer]) -> list[bytes]:
    """`encode` of each row of an (n, N_BINS) array of counts, in one pass."""
    rows, bins = np.nonzero(hists)
    out = np.empty(len(rows), dtype=_SPARSE)
    out["bin"] = bins
    out["n"] = hists[rows, bins]
    body = out.tobytes()
    bounds = [0, *(np.cumsum(np.bincount(rows, minlength=len(hists))) * _SPARSE.itemsize).tolist()]
    return [_SPARSE_TAG + body[a:b] for a, b in itertools.pairwise(bounds)]


def decode(blob: bytes | None) -> npt.NDArray[np.uint32]:
    """Counts from `encode`; zeros for None."""
    return decode_sum([blob] if blob else []).astype(np.uint32)


def _sparse_body(blob: bytes) -> bytes:
    """A non-empty blob's (bin, count) entries, as `encode` writes them after its tag (either encoding)."""
    if blob[:1] == _SPARSE_TAG:
        return blob[1:]
    # the first, dense zlib encoding
    dense = np.frombuffer(zlib.decompress(blob), dtype="<u4")
    return encode(dense.astype(np.uint32))[1:]


def decode_sum(blobs: Sequence[bytes | None]) -> npt.NDArray[np.int64]:
    """The summed counts of many blobs, decoded in one pass (periods of many days and stores)."""
    parts = [blob[1:] if blob[:1] == _SPARSE_TAG else _sparse_body(blob) for blob in blobs if blob]
    if not parts:
        return np.zeros(N_BINS, dtype=np.int64)
    entries = np.frombuffer(b"".join(parts), dtype=_SPARSE)
    return np.bincount(entries["bin"], weights=entries["n"], minlength=N_BINS).astype(np.int64)


def decode_rows(blobs: Sequence[bytes | None]) -> npt.NDArray[np.int64]:
    """The counts of each blob, decoded in one pass: shape (len(blobs), N_BINS), zeros for None."""
    parts = [_sparse_body(blob) if blob else b"" for blob in blobs]
    sizes = [len(part) // _SPARSE.itemsize for part in parts]
    entries = np.frombuffer(b"".join(parts), dtype=_SPARSE)
    rows = np.repeat(np.arange(len(parts)), sizes)
    flat = np.bincount(rows * N_BINS + entries["bin"], weights=entries["n"], minlength=len(parts) * N_BINS)
    return flat.astype(np.int64).reshape(len(parts), N_BINS)


def decode_group_sums(blobs: Sequence[bytes], groups: Sequence[int], n_groups: int) -> npt.NDArray[np.int64]:
    """The summed counts of the blobs of each group (a period's rows of every store at once), decoded in one
    pass: shape (n_groups, N_BINS); `groups[k]` is the group of `blobs[k]` (non-empty blobs)."""
    parts = [_sparse_body(blob) for blob in blobs]
    sizes = [len(part) // _SPARSE.itemsize for part in parts]
    entries = np.frombuffer(b"".join(parts), dtype=_SPARSE)
    rows = np.repeat(np.asarray(groups, dtype=np.int64), sizes)
    flat = np.bincount(rows * N_BINS + entries["bin"], weights=entries["n"], minlength=n_groups * N_BINS)
    return flat.astype(np.int64).reshape(n_groups, N_BINS)


def medians(hists: npt.NDArray[np.int64]) -> list[float | None]:
    """`median` of each row of an (n, N_BINS) array of counts, in one pass: the same floating-point steps
    on the same values, so each equals `median` of its row exactly."""
    if len(hists) == 0:
        return []
    cum = np.cumsum(hists, axis=1)
    totals = cum[:, -1]
    half = totals / 2.0
    i = np.minimum((cum < half[:, None]).sum(axis=1), N_BINS - 1)  # searchsorted(cum, half, "left")
    rows = np.arange(len(hists))
    before = np.where(i > 0, cum[rows, np.maximum(i - 1, 0)], 0).astype(np.float64)
    count = np.maximum(hists[rows, i], 1).astype(np.float64)  # > 0 wherever the total is
    frac = (half - before) / count
    lo, hi = _EDGES_S[i], _EDGES_S[i + 1]
    values = lo + frac * (hi - lo)
    return [None if t == 0 else v for t, v in zip(totals.tolist(), values.tolist(), strict=True)]


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
