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


@given(rows=COUNTS, groups=st.lists(st.integers(0, 3), min_size=12, max_size=12))
def test_group_sums_and_their_medians_equal_the_one_histogram_functions(
    rows: list[dict[int, int]], groups: list[int]
) -> None:
    """The league's one-pass path (every store's histograms summed, every median read at once) gives
    exactly what summing and reading each store's alone gives."""
    blobs = [histogram.encode(dense(c).astype(np.uint32)) for c in rows]
    rows_of = [[b for b, g in zip(blobs, groups, strict=False) if g == k] for k in range(4)]
    sums = histogram.decode_group_sums(blobs, groups[: len(blobs)], 4)
    assert [list(r) for r in sums] == [list(histogram.decode_sum(bs)) for bs in rows_of]
    assert histogram.medians(sums) == [histogram.median(histogram.decode_sum(bs)) for bs in rows_of]


def test_medians_of_edge_histograms() -> None:
    hists = np.zeros((4, histogram.N_BINS), dtype=np.int64)
    hists[1, 0] = 3  # everything under a second
    hists[2, -1] = 1  # one day or longer
    hists[3, [10, 50, 120]] = [1, 2, 1]  # the middle falls on a bin's upper edge
    assert histogram.medians(hists) == [histogram.median(h) for h in hists]
    assert histogram.medians(hists)[0] is None and histogram.medians(hists[:0]) == []
