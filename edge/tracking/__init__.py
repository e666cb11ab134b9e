"""Tracking on the floor plan: one tracker per node, fusing the node's cameras."""

from __future__ import annotations

from shapely.geometry.base import BaseGeometry

from edge.config import TrackerConfig
from edge.tracking.base import FloorDetections, Tracker, TrackerStep, TrackingError, TrackState
from edge.tracking.floor_kalman import FloorKalmanTracker


def make_tracker(
    config: TrackerConfig, coverage_m: BaseGeometry | None = None, hideouts_m: BaseGeometry | None = None
) -> Tracker:
    """The tracker named by `config.type`; `coverage_m` is the floor area the node's cameras see,
    `hideouts_m` where people vanish while staying put (display cars' interiors)."""
    if config.type == "floor-kalman":
        return FloorKalmanTracker(config, coverage_m, hideouts_m)
    raise TrackingError(f"unknown tracker type {config.type!r}")


__all__ = [
    "FloorDetections",
    "FloorKalmanTracker",
    "TrackState",
    "Tracker",
    "TrackerStep",
    "TrackingError",
    "make_tracker",
]
