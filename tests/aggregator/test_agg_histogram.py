"""Duration histograms: the many-row encoders and decoders agree with the one-histogram ones."""

from __future__ import annotations

import zlib

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from aggregator import histogram

COUNTS = st.lists(
    st.dictionaries(st.integers(0, histogram.N_BINS - 1), st.integers(1, 2**31), max_size=30), max_size=12
)


def dense(counts: dict[int, int]) -> np.ndarray:
    out = np.zeros(histogram.N_BINS, dtype=np.int64)
    out[list(counts)] = list(counts.values())
    return out


@given(rows=COUNTS)
def test_encode_rows_is_encode_of_each_row(rows: list[dict[int, int]]) -> None:
    hists = np.stack([dense(c) for c in rows]) if rows else np.zeros((0, histogram.N_BINS), np.int64)
    assert histogram.encode_rows(hists) == [histogram.encode(h.astype(np.uint32)) for h in hists]


@given(rows=COUNTS, kinds=st.lists(st.sampled_from(["sparse", "dense zlib", "none"]), min_size=12))
def test_decode_rows_is_decode_of_each_blob(rows: list[dict[int, int]], kinds: list[str]) -> None:
    blobs: list[bytes | None] = []
    for counts, kind in zip(rows, kinds, strict=False):
        h = dense(counts)
        if kind == "sparse":
            blobs.append(histogram.encode(h.astype(np.uint32)))
        elif kind == "dense zlib":  # the first encoding, still in old databases
            blobs.append(zlib.compress(h.astype("<u4").tobytes()))
        else:
            blobs.append(None)
    decoded = histogram.decode_rows(blobs)
    assert decoded.shape == (len(blobs), histogram.N_BINS)
    assert [list(r) for r in decoded] == [list(histogram.decode(b).astype(np.int64)) for b in blobs]
    assert (decoded.sum(axis=0) == histogram.decode_sum(blobs)).all()
