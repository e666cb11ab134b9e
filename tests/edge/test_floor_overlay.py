"""Output boxes (MOT rows, overlays) stand between the detection's feet and the track's filtered position."""

from __future__ import annotations

import itertools
from datetime import timedelta

import numpy as np
from showroom_builders import FPS, PX_PER_M, T0, detections_at, make_config, stamper

from edge.floor.overlay import FEET_SMOOTHING
from edge.pipeline import EdgePipeline


def crossings(rows_px: list[float], line_px: float) -> int:
    """How often a sequence of image rows crosses a horizontal image line (either way)."""
    below = [r >= line_px for r in rows_px]
    return sum(a != b for a, b in itertools.pairwise(below))


def test_a_person_walking_along_a_line_crosses_it_less_often_than_their_jittering_detections() -> None:
    # Someone walks along y = 10 m (an image row); the detector's boxes jitter 5 cm (2.5 px) across it.
    pipeline = EdgePipeline(make_config(), stamper())
    rng = np.random.default_rng(3)
    detected, shown = [], []
    for k in range(130):
        x, y = 3.0 + 0.6 * k / FPS, 10.0 + rng.normal(0, 0.05)
        pipeline.process(T0 + timedelta(seconds=k / FPS), {"cam-a": detections_at([(x, y)])})
        rows = pipeline.observed_tracks("cam-a")
        if k >= 10 and rows:
            [(_, box, _)] = rows
            detected.append(y * PX_PER_M)
            shown.append(float(box[1] + box[3]) / 2)
    line_px = 10.0 * PX_PER_M
    spread_detected = float(np.std(np.array(detected) - line_px))
    spread_shown = float(np.std(np.array(shown) - line_px))
    print(
        f"row spread: detections {spread_detected:.2f} px, boxes {spread_shown:.2f} px; crossings of the "
        f"line: detections {crossings(detected, line_px)}, boxes {crossings(shown, line_px)}"
    )
    assert len(shown) > 100
    assert spread_shown < 0.9 * spread_detected
    assert crossings(shown, line_px) < crossings(detected, line_px)
    # Still the person's position: on average where the detections are.
    assert abs(float(np.mean(shown)) - float(np.mean(detected))) < 1.0


def test_the_box_follows_a_walker_without_lagging_behind_the_detections() -> None:
    pipeline = EdgePipeline(make_config(), stamper())
    lags = []
    for k in range(60):
        x = 3.0 + 1.5 * k / FPS
        pipeline.process(T0 + timedelta(seconds=k / FPS), {"cam-a": detections_at([(x, 10.0)])})
        rows = pipeline.observed_tracks("cam-a")
        if k >= 10 and rows:
            [(_, box, _)] = rows
            lags.append(x * PX_PER_M - float(box[0] + box[2]) / 2)
    # A steady walk: the filter has caught up, so the box is on the person (within 10 cm = 5 px).
    assert 0 < FEET_SMOOTHING < 1
    assert max(abs(v) for v in lags[-20:]) < 5.0, lags[-20:]
