"""The store health score (DOMAIN.md): six dimensions scored against the brand's TOP (90th percentile).

Pure functions: values in, scores out. A dimension a store has no value for (no visitors, so no rates)
is left out of its weighted mean, and the remaining weights are renormalised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from aggregator.registry import DIMENSIONS, Dimension

TOP_PERCENTILE = 90.0


def brand_top(values: Sequence[float]) -> float | None:
    """The 90th percentile (linear interpolation) of the brand's values; None when there are none."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), TOP_PERCENTILE))


def brand_average(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def score(value: float | None, top: float | None) -> float | None:
    """`min(100, 100 * value / top)`; 0 when the brand's TOP is 0 (nobody scored), None without a value."""
    if value is None or top is None:
        return None
    if top <= 0:
        return 0.0
    return float(min(100.0, 100.0 * value / top))


def weighted_health(
    scores: Mapping[Dimension, float | None], weights: Mapping[Dimension, float]
) -> float | None:
    """Weighted mean of the dimension scores that exist; None when none does or all weights are 0."""
    num = 0.0
    den = 0.0
    for d in DIMENSIONS:
        s = scores.get(d)
        w = weights.get(d, 1.0)
        if s is None or w <= 0:
            continue
        num += w * s
        den += w
    return num / den if den > 0 else None


def weighted_healths(
    values: np.ndarray, tops: Sequence[float | None], weights: Mapping[Dimension, float]
) -> np.ndarray:
    """`weighted_health` of many stores at once: `values` has a row per store and a column per dimension
    (in `DIMENSIONS` order, NaN where the store has no value), `tops` the brand's TOP of each dimension.
    Each row's figure is the one `weighted_health` gives for its scores, bit for bit: the same products
    summed in the same dimension order (a skipped dimension adds 0.0, which leaves a sum unchanged).
    NaN where a store has no score."""
    num = np.zeros(len(values))
    den = np.zeros(len(values))
    for i, d in enumerate(DIMENSIONS):
        w, top = weights.get(d, 1.0), tops[i]
        if w <= 0 or top is None:
            continue
        v = values[:, i]
        scored = ~np.isnan(v)
        s = np.minimum(100.0, 100.0 * v / top) if top > 0 else np.zeros(len(v))
        num = num + np.where(scored, w * s, 0.0)
        den = den + np.where(scored, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)
