"""The detections type: validated once and read-only after; subsets and clipping keep each box's appearance
embedder pointing at that box."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from vision_models.detections import Detections, DetectionsError


def test_a_subset_embeds_the_boxes_it_kept() -> None:
    asked: list[list[int]] = []

    def appearance(rows: np.ndarray) -> np.ndarray:
        asked.append([int(r) for r in rows])
        out = np.zeros((len(rows), 4), np.float32)
        out[np.arange(len(rows)), np.asarray(rows) % 4] = 1.0
        return out

    xyxy = np.array([[0, 0, 10, 20], [5, 5, 15, 25], [30, 0, 40, 20], [50, 0, 60, 20]], np.float32)
    dets = Detections(xyxy, np.array([0.9, 0.2, 0.8, 0.7], np.float32), (100, 100), appearance)
    kept = dets[dets.confidence > 0.5].clipped()[np.array([2, 0])]
    assert np.array_equal(kept.xyxy, xyxy[[3, 0]])
    assert kept.appearance is not None
    assert kept.appearance(np.array([0, 1])).argmax(axis=1).tolist() == [3, 0]
    assert asked == [[3, 0]]
    assert Detections(xyxy, dets.confidence, (100, 100)).appearance is None


def boxes(n: int) -> np.ndarray:
    return np.array([[10 * i, 0, 10 * i + 8, 20] for i in range(n)], np.float32)


def test_validated_detections_are_read_only() -> None:
    dets = Detections(boxes(3), np.array([0.9, 0.5, 0.7], np.float32), (100, 100))
    with pytest.raises(ValueError, match="read-only"):
        dets.xyxy[0, 0] = np.nan  # e.g. a buggy source writing into the buffer it handed over
    with pytest.raises(ValueError, match="read-only"):
        dets.confidence[0] = 2.0
    for derived in (
        dets[1:],
        dets[np.array([True, False, True])],
        dets[np.array([2, 0])],
        dets.clipped(),
        replace(dets, appearance=lambda rows: np.zeros((len(rows), 4), np.float32)),
    ):
        assert not derived.xyxy.flags.writeable and not derived.confidence.flags.writeable


def test_the_arrays_passed_in_stay_the_callers() -> None:
    xyxy, confidence = boxes(2), np.array([0.9, 0.8], np.float32)
    dets = Detections(xyxy, confidence, (100, 100))
    xyxy[0, 0], confidence[0] = np.nan, 2.0  # the caller reuses its buffers for the next frame
    assert np.isfinite(dets.xyxy).all() and dets.confidence.tolist() == pytest.approx([0.9, 0.8])
    # A view of another Detections' arrays is shared, not copied: nothing can write into either.
    assert np.shares_memory(dets[1:].xyxy, dets.xyxy)
    assert replace(dets, appearance=None).xyxy is dets.xyxy


@pytest.mark.parametrize(
    ("xyxy", "confidence", "message"),
    [
        (np.zeros((2, 3), np.float32), np.zeros(2, np.float32), r"xyxy must have shape \(N, 4\)"),
        (boxes(2), np.zeros(3, np.float32), "2 boxes but confidence has 3 scores"),
        (np.array([[0, 0, np.nan, 1]], np.float32), np.ones(1, np.float32), "NaN or infinite"),
        (np.array([[5, 0, 1, 1]], np.float32), np.ones(1, np.float32), "x1 <= x2"),
        (boxes(1), np.array([1.5], np.float32), r"confidence must lie in \[0, 1\]"),
    ],
)
def test_bad_detections_are_rejected_at_construction(
    xyxy: np.ndarray, confidence: np.ndarray, message: str
) -> None:
    with pytest.raises(DetectionsError, match=message):
        Detections(xyxy, confidence, (100, 100))
