"""The detections type: subsets and clipping keep each box's appearance embedder pointing at that box."""

from __future__ import annotations

import numpy as np

from vision_models.detections import Detections


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
