"""The tracking boundary: floor detections in, confirmed tracks out, behind a small `Tracker` protocol."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
from shapely.geometry.base import BaseGeometry

from vision_models.arrays import XY, Float64Array, read_only

EmbedFn = Callable[[Sequence[int]], Float64Array]
"""Appearance of some floor detections, computed on request: indices (K,) in, (K, D) unit rows out, a row
of NaN where none can be had. On-box only: an embedding never leaves the node."""


class TrackingError(ValueError):
    """Floor detections or tracker input with wrong shapes or values."""


@dataclass(frozen=True)
class FloorDetections:
    """One time step's person detections on the floor plan, all of a node's cameras together; validated
    where built, and never changed after.

    Attributes:
        xy_m: float64 (N, 2), floor position in metres, finite. Read-only.
        cov_m2: float64 (N, 2, 2), position uncertainty (covariance) in square metres, finite. Read-only.
        score: float64 (N,), detector confidence in [0, 1]. Read-only.
        sources: per detection, the camera boxes it came from: `{camera_id: index in that camera's
            Detections}` (one entry, or several once overlapping cameras' views of one person are fused).
        embed: appearance embeddings on request (`EmbedFn`); None when no appearance model runs.
        stature_m: float64 (N,), the person's height in metres each box implies (its height in pixels times
            the floor's metres per pixel at its feet), NaN where a box does not show a whole standing person
            (cut by the image edge or a display car, an overhead camera); None when unknown for all. It tells
            whether a weak detection has the size of a person standing there. Read-only.
    """

    xy_m: Float64Array
    cov_m2: Float64Array
    score: Float64Array
    sources: tuple[dict[str, int], ...]
    embed: EmbedFn | None = field(default=None, repr=False, compare=False)
    stature_m: Float64Array | None = None

    def __post_init__(self) -> None:
        n = len(self.sources)
        xy_m = read_only(np.asarray(self.xy_m, dtype=np.float64))
        cov_m2 = read_only(np.asarray(self.cov_m2, dtype=np.float64))
        score = read_only(np.asarray(self.score, dtype=np.float64))
        if xy_m.shape != (n, 2) or cov_m2.shape != (n, 2, 2) or score.shape != (n,):
            raise TrackingError(
                f"floor detections: expected xy_m ({n}, 2), cov_m2 ({n}, 2, 2), score ({n},); got "
                f"{xy_m.shape}, {cov_m2.shape}, {score.shape}"
            )
        if not (np.isfinite(xy_m).all() and np.isfinite(cov_m2).all()):
            raise TrackingError("floor detections contain NaN or infinite positions")
        if not ((score >= 0) & (score <= 1)).all():
            raise TrackingError(f"floor detection scores must lie in [0, 1], got {score.tolist()}")
        object.__setattr__(self, "xy_m", xy_m)
        object.__setattr__(self, "cov_m2", cov_m2)
        object.__setattr__(self, "score", score)
        if self.stature_m is not None:
            stature_m = read_only(np.asarray(self.stature_m, dtype=np.float64))
            if stature_m.shape != (n,):
                raise TrackingError(f"floor detections: expected stature_m ({n},), got {stature_m.shape}")
            if (stature_m <= 0).any() or np.isinf(stature_m).any():
                raise TrackingError(f"statures must be positive metres or NaN, got {stature_m.tolist()}")
            object.__setattr__(self, "stature_m", stature_m)

    def __len__(self) -> int:
        return len(self.sources)

    @classmethod
    def empty(cls) -> FloorDetections:
        return cls(np.zeros((0, 2)), np.zeros((0, 2, 2)), np.zeros((0,)), ())


@dataclass(frozen=True)
class Sighting:
    """Where and when a person was last seen, and (with re-identification) what they looked like."""

    xy: XY
    seen_utc: datetime
    appearance: Float64Array | None = None


@dataclass(frozen=True)
class TrackState:
    """A confirmed track at one time step (floor metres).

    Attributes:
        track_id: the tracker's id (an integer, never sent off the box).
        xy_m: filtered floor position; while the track is not observed, the last observed position.
        velocity_mps: filtered velocity, metres per second.
        observed: True when a detection was matched to the track at this step.
        first_xy_m: where the track was first seen (before confirmation), so a door crossing made
            while the track was still tentative is not missed.
        last_seen_utc: time of the last matched detection.
        sources: this step's camera boxes, `{camera_id: detection index}` (empty when not observed).
        score: confidence of the matched detection (0 when not observed).
        appearance: the person's appearance embedding (D,), unit norm, smoothed over the track's
            sightings; None without an appearance model or before the first embedding. On-box only.
    """

    track_id: int
    xy_m: XY
    velocity_mps: XY
    observed: bool
    first_xy_m: XY
    last_seen_utc: datetime
    sources: dict[str, int] = field(default_factory=dict)
    score: float = 0.0
    appearance: Float64Array | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class TrackerStep:
    """What a tracker reports after one update.

    Attributes:
        tracks: every confirmed track still alive (observed now or lost for a short while), by id.
        ended: ids of confirmed tracks the tracker gave up on at this step (they never come back).
        untracked: indices of this step's floor detections that would have started a track but found the
            tracker at capacity (`TrackerConfig.max_tracks`): people in view that nothing follows.
    """

    tracks: list[TrackState]
    ended: list[int]
    untracked: tuple[int, ...] = ()


class Tracker(Protocol):
    """A multi-object tracker on the floor plan. Tracks reach analytics only once confirmed."""

    def update(
        self, ts_utc: datetime, detections: FloorDetections, looked_at_m: BaseGeometry | None = None
    ) -> TrackerStep:
        """Advance to `ts_utc` (strictly after the previous call) and associate `detections`.

        `looked_at_m`: the floor area the cameras that reported at this step can see (None: all of it). A
        track outside it was not looked for, so not finding it is not evidence that it has gone.
        """
        ...

    def close(self) -> list[int]:
        """End every track; returns the ids of confirmed tracks that were still alive."""
        ...
