"""Track birth from evidence: which unmatched detections start tracks, and when a weak-born track is real.

A confident detection (`new_track_score`) starts a track; a weak one (from `weak_birth_score`) only when its
box is a person's height where it stands (`stature_range` of `person_stature_m`, from the calibration's floor
scale), nobody explains it (a confirmed track missed at this step within walking reach, or a detection
already taken, in their combined position noise), and such a track is confirmed only once it has walked
(`weak_birth_travel_m`, beyond its position noise): static clutter and flicker stay out, far and small people
get tracked.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edge.config import TrackerConfig
from edge.tracking.association import walking_reach
from edge.tracking.base import FloorDetections
from vision_models.arrays import Float64Array

_SAME_PERSON_CHI2 = 5.99
"""Chi-square 95% for 2 degrees of freedom: a weak detection closer than this to a detection already taken
at this step (in their combined position noise) cannot be told from that person and starts no track."""
_WALKED_CHI2 = 13.8
"""Chi-square 99.9%: a weak-born track's walk must stand out of its first and latest positions' noise."""


def plausible_people(det: FloorDetections, cfg: TrackerConfig) -> npt.NDArray[np.bool_]:
    """(N,) which detections score at least `weak_birth_score` and have a person's size where they stand
    (their stature within `stature_range` of `person_stature_m`; unknown statures do not)."""
    if det.stature_m is None:
        return np.zeros(len(det), dtype=bool)
    low, high = cfg.stature_range
    with np.errstate(invalid="ignore"):
        ratio = det.stature_m / cfg.person_stature_m
        return np.asarray((det.score >= cfg.weak_birth_score) & (ratio >= low) & (ratio <= high))


def start_from(
    det: FloorDetections,
    used: set[int],
    plausible: npt.NDArray[np.bool_],
    missed_last_xy: Float64Array,
    missed_unseen_s: Float64Array,
    cfg: TrackerConfig,
) -> list[int]:
    """Unmatched detections that start tracks: every confident one, then each weak one of a person's size
    that no one explains: neither a confirmed track not matched at this step (last seen at `missed_last_xy`
    (M, 2), `missed_unseen_s` (M,) ago: a person missed for a frame or hidden comes back with a weak box)
    nor a detection already taken (a tracked or a new person)."""
    strong = [j for j in range(len(det)) if j not in used and det.score[j] >= cfg.new_track_score]
    weak = [j for j in range(len(det)) if j not in used and j not in strong and plausible[j]]
    if weak and len(missed_last_xy):
        # Within walking reach of where a missed track's person was last seen: may be them.
        reach = walking_reach(missed_unseen_s, cfg.max_speed_mps)
        dist = np.linalg.norm(det.xy_m[weak][None] - missed_last_xy[:, None], axis=2)
        near = (dist <= reach[:, None]).any(axis=0)
        weak = [j for j, n in zip(weak, near, strict=True) if not n]
    if not weak:
        return strong
    taken = [*used, *strong]
    births = list(strong)
    for j in sorted(weak, key=lambda k: (-det.score[k], k)):
        if not any(same_person(det, j, k) for k in taken):
            births.append(j)
            taken.append(j)
    return births


def same_person(det: FloorDetections, j: int, k: int) -> bool:
    """Detections j and k cannot be told apart in their combined position noise."""
    d = det.xy_m[j] - det.xy_m[k]
    s = det.cov_m2[j] + det.cov_m2[k]
    return bool(d @ np.linalg.solve(s, d) <= _SAME_PERSON_CHI2)


def walked(sightings: list[tuple[Float64Array, Float64Array]], cfg: TrackerConfig) -> bool:
    """Has a weak-born track walked `weak_birth_travel_m` from where it was first seen to where it is now,
    beyond the position noise? `sightings`: each matched detection's position (2,) and covariance (2, 2).
    Both ends are the mean of `confirm_hits` sightings, so one stray foot point (a static blob's jitter) does
    not make a walk."""
    n = cfg.confirm_hits
    if len(sightings) < n + 1:
        return False
    xy = np.array([p for p, _ in sightings])
    cov = np.array([c for _, c in sightings])
    d = xy[-n:].mean(axis=0) - xy[:n].mean(axis=0)
    if float(np.hypot(d[0], d[1])) < cfg.weak_birth_travel_m:
        return False
    s = (cov[:n].sum(axis=0) + cov[-n:].sum(axis=0)) / n**2
    return bool(d @ np.linalg.solve(s, d) >= _WALKED_CHI2)
