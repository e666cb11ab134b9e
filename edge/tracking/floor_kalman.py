"""The default tracker: constant-velocity Kalman filters in floor metres with two-stage association.

Why this shape, for people walking among display cars:
- Tracking on the floor plan (not in pixels) makes the motion model physical (metres, m/s) and lets one
  tracker serve every camera of a node: overlapping views are fused before association, and a person who
  walks from one camera's view into another's keeps their track.
- Each detection carries its own floor uncertainty (the homography's metres-per-pixel at its foot point
  times a fraction of the box height), so far, small people get wide gates and near people tight ones.
- Association is ByteTrack's two stages: confident detections first against every track, then the
  low-score leftovers (a person half hidden by a car) against the tracks still unmatched. The cost is the
  negative log-likelihood of the detection under the track's prediction, gated at chi-square 99.9% and by
  the fastest plausible walk, matched greedily from the cheapest pair (deterministic, and a fraction of a
  millisecond for 20 people).
- Tracks start tentative and are confirmed after `confirm_hits` matches; only confirmed tracks are reported.
- A confirmed track that loses its detections keeps predicting (with a growing uncertainty) for
  `max_lost_s` seconds, so a person hidden behind a car or a pillar is re-linked to the same track, but only
  within walking reach of where they were last seen and of where they are predicted (people do not run
  between display cars). A short track (a few matches: often a false positive) is not kept that long, and
  a track lost inside a display car's interior is not re-linked to anyone outside it: the person is sitting
  in the car.
- With a re-identification model (`tracker.reid`), appearance decides where motion cannot: a hidden
  person's track is re-linked only to someone who looks like them, and where two tracks could take the same
  detection (people side by side) the one whose person looks alike is cheaper. Boxes are embedded on
  request within a per-step budget (see `edge.tracking.appearance`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import shapely
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from edge.config import TrackerConfig
from edge.tracking.appearance import FIRST_SAMPLES, StepAppearance, blend, cosine_distance
from edge.tracking.base import FloorDetections, TrackerStep, TrackingError, TrackState
from vision_models.arrays import XY, Float64Array

_CHI2_GATE = 13.8
"""Chi-square 99.9% for 2 degrees of freedom: a detection further out cannot be this track."""
_STRIDE_M = 0.3
"""How far a person's foot point can jump between frames beyond walking speed (posture, box jitter)."""
_EDGE_MARGIN_M = 0.5
_LEFT_VIEW_AFTER_S = 0.5
"""A lost track predicted within `_EDGE_MARGIN_M` of the edge of the cameras' view (or beyond) for longer
than this has walked out of view."""
_TENTATIVE_MAX_MISSES = 1
_HIDDEN_SPEED_MPS = 1.5
"""Out of sight for longer than a second, a person walks on at most this fast (nobody runs between display
cars): a lost track is not re-linked to a detection further than that from where it was last seen."""
_YOUNG_HITS = 10
_YOUNG_MAX_LOST_S = 1.0
"""A track matched fewer than `_YOUNG_HITS` times (two seconds at 5 fps) is kept for only this long once
lost: too little evidence to coast on (a false positive's track must not wait to take over someone else)."""
_HIDEOUT_REACH_M = 1.0
"""How far from where a track was last seen inside a hideout (a car's interior) it may be re-linked."""
_MAX_DT_S = 5.0
"""Longer gaps between updates are clamped (a stalled source); tracks then age out by wall time."""


@dataclass
class _Meta:
    track_id: int
    hits: int
    misses: int
    confirmed: bool
    first_xy_m: XY
    last_xy_m: XY
    last_seen_utc: datetime
    last_seen_s: float
    appearance: Float64Array | None = None
    appearance_samples: int = 0
    appearance_at_s: float = -math.inf

    def learn_appearance(self, embedding: Float64Array, now_s: float) -> None:
        """Fold one more embedding of this track's person into its running appearance."""
        self.appearance = blend(self.appearance, self.appearance_samples, embedding)
        self.appearance_samples += 1
        self.appearance_at_s = now_s


def greedy_match(cost: Float64Array) -> list[tuple[int, int]]:
    """Pairs (row, col) taken cheapest first; `inf` entries are never matched. Deterministic."""
    if cost.size == 0:
        return []
    rows, cols = np.nonzero(np.isfinite(cost))
    if len(rows) == 0:
        return []
    order = np.lexsort((cols, rows, cost[rows, cols]))
    used_r: set[int] = set()
    used_c: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r in used_r or c in used_c:
            continue
        used_r.add(r)
        used_c.add(c)
        pairs.append((r, c))
    return pairs


class FloorKalmanTracker:
    """Multi-object tracker on the floor plan; see the module docstring. Implements `Tracker`."""

    def __init__(
        self,
        config: TrackerConfig | None = None,
        coverage_m: BaseGeometry | None = None,
        hideouts_m: BaseGeometry | None = None,
    ) -> None:
        """`coverage_m`: the floor area the node's cameras see; a lost track heading out of it has left
        the view, and is ended quickly instead of waiting to be re-linked to whoever comes in next.

        `hideouts_m`: where a person can vanish from every camera while staying put (display cars'
        interiors). A track last seen there is re-linked only to a detection within `_HIDEOUT_REACH_M` of
        that spot: the person is sitting in the car, and whoever walks by outside is someone else. Getting
        out later is a new track, which the analytics join to the visitor parked in the car."""
        self.config = config or TrackerConfig()
        self._inner: BaseGeometry | None = None
        if coverage_m is not None and not coverage_m.is_empty:
            self._inner = coverage_m.buffer(-_EDGE_MARGIN_M)
            shapely.prepare(self._inner)
        self._hideouts: BaseGeometry | None = None
        if hideouts_m is not None and not hideouts_m.is_empty:
            self._hideouts = hideouts_m
            shapely.prepare(self._hideouts)
        self._x: Float64Array = np.zeros((0, 4))
        self._p: Float64Array = np.zeros((0, 4, 4))
        self._meta: list[_Meta] = []
        self._next_id = 1
        self._t0: datetime | None = None
        self._last_s: float | None = None
        self._motion_cache: tuple[float, Float64Array, Float64Array] | None = None
        self.embedded = 0
        """Boxes embedded by the re-identification model so far (its CPU cost is per box)."""

    # ---------------------------------------------------------------------------------------------
    # Kalman steps (batched over tracks)
    # ---------------------------------------------------------------------------------------------

    def _predict(self, dt: float) -> None:
        if not len(self._meta) or dt <= 0:
            return
        f, qm = self._motion(dt)
        self._x = self._x @ f.T
        self._p = f @ self._p @ f.T + qm
        speed = np.hypot(self._x[:, 2], self._x[:, 3])
        too_fast = speed > self.config.max_speed_mps
        if too_fast.any():
            self._x[too_fast, 2:] *= (self.config.max_speed_mps / speed[too_fast])[:, None]

    def _motion(self, dt: float) -> tuple[Float64Array, Float64Array]:
        """Transition and process noise for a step of `dt` seconds (kept for the last step length: frames
        come at a steady rate)."""
        if self._motion_cache is not None and self._motion_cache[0] == dt:
            return self._motion_cache[1], self._motion_cache[2]
        f = np.eye(4)
        f[0, 2] = f[1, 3] = dt
        q = self.config.accel_mps2**2
        g = np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]]) * q
        qm = np.zeros((4, 4))
        qm[np.ix_([0, 2], [0, 2])] = g
        qm[np.ix_([1, 3], [1, 3])] = g
        self._motion_cache = (dt, f, qm)
        return f, qm

    def _cost(
        self, track_idx: list[int], det: FloorDetections, det_idx: list[int], now_s: float
    ) -> Float64Array:
        """Negative log-likelihood of each detection under each track's prediction; gated pairs are inf."""
        if not track_idx or not det_idx:
            return np.zeros((len(track_idx), len(det_idx)))
        x = self._x[track_idx, :2]  # (T, 2)
        s = self._p[track_idx][:, :2, :2][:, None] + det.cov_m2[det_idx][None]  # (T, D, 2, 2)
        d = det.xy_m[det_idx][None] - x[:, None]  # (T, D, 2)
        a, b, c, e = s[..., 0, 0], s[..., 0, 1], s[..., 1, 0], s[..., 1, 1]
        det_s = a * e - b * c
        maha = (e * d[..., 0] ** 2 - (b + c) * d[..., 0] * d[..., 1] + a * d[..., 1] ** 2) / det_s
        cost = maha + np.log(det_s)
        unseen_s = np.array([now_s - self._meta[i].last_seen_s for i in track_idx])
        # Metres a person can have walked since last seen: any pace for a second, then a walk.
        reach = (
            1.0
            + self.config.max_speed_mps * np.minimum(unseen_s, 1.0)
            + _HIDDEN_SPEED_MPS * np.maximum(unseen_s - 1.0, 0.0)
        )
        # ... both from where the track was last seen and from where it predicts them (walking on):
        # a person who walked out of view does not come back 5 m behind where they vanished.
        last = self._last_xy(track_idx)
        if self._hideouts is not None:
            hidden = shapely.contains_xy(self._hideouts, last[:, 0], last[:, 1])
            reach = np.where(hidden, np.minimum(reach, _HIDEOUT_REACH_M), reach)
        from_last = np.linalg.norm(det.xy_m[det_idx][None] - last[:, None], axis=2)
        from_predicted = np.linalg.norm(d, axis=2)
        too_far = (from_last > reach[:, None]) | (from_predicted > reach[:, None])
        cost[(maha > _CHI2_GATE) | too_far] = np.inf
        return np.asarray(cost, dtype=np.float64)

    def _appearance_cost(
        self, cost: Float64Array, track_idx: list[int], det_idx: list[int], app: StepAppearance
    ) -> Float64Array:
        """`cost` with appearance where it decides: a lost track is not re-linked to someone who looks like
        somebody else, and where a detection could go to two tracks (or a track take two detections), the
        pair whose appearances agree is cheaper. Pairs without both appearances keep their motion cost."""
        if cost.size == 0:
            return cost
        reid = self.config.reid
        assert reid is not None
        has = np.array([self._meta[i].appearance is not None for i in track_idx])
        lost = np.array([self._meta[i].misses > 0 for i in track_idx])
        finite = np.isfinite(cost)
        contested = (finite.sum(axis=0)[None, :] > 1) | (finite.sum(axis=1)[:, None] > 1)
        need = finite & has[:, None] & (lost[:, None] | contested)
        if not need.any():
            return cost
        first = need & lost[:, None]
        order = [int(c) for c in np.nonzero(first.any(axis=0))[0]]
        order += [int(c) for c in np.nonzero(need.any(axis=0))[0]]
        app.fetch(det_idx[c] for c in order)
        cost = cost.copy()
        for r, c in zip(*np.nonzero(need), strict=True):
            embedding = app.get(det_idx[c])
            track_app = self._meta[track_idx[r]].appearance
            if embedding is None or track_app is None:
                continue
            d = cosine_distance(track_app, embedding)
            if lost[r] and d > reid.same_person_distance:
                cost[r, c] = np.inf
            else:
                cost[r, c] += reid.weight * (d - reid.same_person_distance / 2)
        return cost

    def _learn_appearance(
        self, matches: dict[int, int], births: list[int], app: StepAppearance, now_s: float
    ) -> None:
        """Fold this step's embeddings into the matched tracks' appearance, asking for more where a track
        has too few embeddings yet, for new tracks' first boxes, then for the stalest refreshes."""
        reid = self.config.reid
        assert reid is not None
        young = [j for i, j in matches.items() if self._meta[i].appearance_samples < FIRST_SAMPLES]
        stale = sorted(
            (self._meta[i].appearance_at_s, j)
            for i, j in matches.items()
            if self._meta[i].appearance_samples >= FIRST_SAMPLES
            and now_s - self._meta[i].appearance_at_s >= reid.refresh_s
        )
        app.fetch([*young, *births, *(j for _, j in stale)])
        for i, j in matches.items():
            if (embedding := app.get(j)) is not None:
                self._meta[i].learn_appearance(embedding, now_s)

    def _last_xy(self, track_idx: list[int]) -> Float64Array:
        """(T, 2) where each track's person was last observed."""
        return np.array([self._meta[i].last_xy_m for i in track_idx], dtype=np.float64).reshape(-1, 2)

    def _looked_at(self, looked_at_m: BaseGeometry | None, i: int) -> bool:
        """Was track i's predicted position in view of a camera that reported at this step?"""
        if looked_at_m is None:
            return True
        return bool(looked_at_m.distance(Point(self._x[i, 0], self._x[i, 1])) <= _EDGE_MARGIN_M)

    def _near_last_seen(
        self, track_idx: list[int], det: FloorDetections, det_idx: list[int], dt: float
    ) -> Float64Array:
        """Distance from each track's last observed position to each detection; beyond a stride is inf."""
        if not track_idx or not det_idx:
            return np.zeros((len(track_idx), len(det_idx)))
        last = self._last_xy(track_idx)
        dist = np.linalg.norm(det.xy_m[det_idx][None] - last[:, None], axis=2)
        dist[dist > _STRIDE_M + self.config.max_speed_mps * dt] = np.inf
        return np.asarray(dist, dtype=np.float64)

    def _update(self, rows: list[int], z: Float64Array, r: Float64Array) -> None:
        """Kalman update of tracks `rows` with positions z (K, 2) of covariance r (K, 2, 2), batched."""
        if not rows:
            return
        p = self._p[rows]
        s = p[:, :2, :2] + r
        a, b, c, d = s[:, 0, 0], s[:, 0, 1], s[:, 1, 0], s[:, 1, 1]
        s_inv = np.stack([np.stack([d, -b], 1), np.stack([-c, a], 1)], 1) / (a * d - b * c)[:, None, None]
        k = p[:, :, :2] @ s_inv  # (K, 4, 2)
        innovation = z - self._x[rows, :2]
        self._x[rows] += np.einsum("kij,kj->ki", k, innovation)
        self._p[rows] = p - k @ p[:, :2, :]

    # ---------------------------------------------------------------------------------------------
    # Public API
    # ---------------------------------------------------------------------------------------------

    def update(
        self, ts_utc: datetime, detections: FloorDetections, looked_at_m: BaseGeometry | None = None
    ) -> TrackerStep:
        if self._t0 is None:
            self._t0 = ts_utc
        now_s = (ts_utc - self._t0).total_seconds()
        if self._last_s is not None and now_s <= self._last_s:
            raise TrackingError(f"time must move forward: {ts_utc.isoformat()} is not after the last update")
        dt = 0.0 if self._last_s is None else min(now_s - self._last_s, _MAX_DT_S)
        self._last_s = now_s
        self._predict(dt)

        cfg = self.config
        high = [j for j in range(len(detections)) if detections.score[j] >= cfg.high_score]
        low = [j for j in range(len(detections)) if detections.score[j] < cfg.high_score]
        confirmed = [i for i, m in enumerate(self._meta) if m.confirmed]
        tentative = [i for i, m in enumerate(self._meta) if not m.confirmed]
        matches: dict[int, int] = {}

        app = StepAppearance(cfg.reid, detections) if cfg.reid and detections.embed is not None else None

        # Stage 1: confident detections against every confirmed track (observed or recently lost).
        cost = self._cost(confirmed, detections, high, now_s)
        if app is not None:
            cost = self._appearance_cost(cost, confirmed, high, app)
        for r, c in greedy_match(cost):
            matches[confirmed[r]] = high[c]
        # Stage 2: low-score detections against confirmed tracks that were observed last step.
        left = [i for i in confirmed if i not in matches and self._meta[i].misses == 0]
        for r, c in greedy_match(self._cost(left, detections, low, now_s)):
            matches[left[r]] = low[c]
        # Stage 3: a sudden turn or stop leaves the motion model behind; confident detections close to
        # where a track was last seen (within a stride) still belong to it.
        used = set(matches.values())
        high_left = [j for j in high if j not in used]
        left = [i for i in confirmed if i not in matches and self._meta[i].misses == 0]
        for r, c in greedy_match(self._near_last_seen(left, detections, high_left, dt)):
            matches[left[r]] = high_left[c]
        # Stage 4: remaining confident detections against tentative tracks.
        used = set(matches.values())
        high_left = [j for j in high if j not in used]
        for r, c in greedy_match(self._cost(tentative, detections, high_left, now_s)):
            matches[tentative[r]] = high_left[c]

        rows = list(matches)
        cols = [matches[i] for i in rows]
        self._update(rows, detections.xy_m[cols], detections.cov_m2[cols])
        for i, j in matches.items():
            m = self._meta[i]
            m.hits += 1
            m.misses = 0
            m.last_seen_utc = ts_utc
            m.last_seen_s = now_s
            m.last_xy_m = (float(detections.xy_m[j, 0]), float(detections.xy_m[j, 1]))
            if not m.confirmed and m.hits >= cfg.confirm_hits:
                m.confirmed = True
        for i, m in enumerate(self._meta):
            if i not in matches and self._looked_at(looked_at_m, i):
                m.misses += 1

        used = set(matches.values())
        births = [
            j for j in range(len(detections)) if j not in used and detections.score[j] >= cfg.new_track_score
        ]
        if app is not None:
            self._learn_appearance(matches, births, app, now_s)
        matched_ids = {self._meta[i].track_id: j for i, j in matches.items()}
        ended = self._prune(now_s)
        for j in births:
            self._start(ts_utc, now_s, detections, j)
            if app is not None and (embedding := app.get(j)) is not None:
                self._meta[-1].learn_appearance(embedding, now_s)
            if cfg.confirm_hits <= 1:
                matched_ids[self._meta[-1].track_id] = j
        if app is not None:
            self.embedded += app.embedded
        return TrackerStep(tracks=self._states(matched_ids, detections), ended=ended)

    def close(self) -> list[int]:
        ended = [m.track_id for m in self._meta if m.confirmed]
        self._x, self._p, self._meta = np.zeros((0, 4)), np.zeros((0, 4, 4)), []
        return ended

    @property
    def tracks_alive(self) -> int:
        return len(self._meta)

    # ---------------------------------------------------------------------------------------------

    def _start(self, ts_utc: datetime, now_s: float, det: FloorDetections, j: int) -> None:
        xy = det.xy_m[j]
        x = np.array([[xy[0], xy[1], 0.0, 0.0]])
        p = np.zeros((1, 4, 4))
        p[0, :2, :2] = det.cov_m2[j]
        p[0, 2, 2] = p[0, 3, 3] = (0.5 * self.config.max_speed_mps) ** 2
        self._x = np.concatenate([self._x, x])
        self._p = np.concatenate([self._p, p])
        point = (float(xy[0]), float(xy[1]))
        confirmed = self.config.confirm_hits <= 1
        self._meta.append(_Meta(self._next_id, 1, 0, confirmed, point, point, ts_utc, now_s))
        self._next_id += 1

    def _prune(self, now_s: float) -> list[int]:
        keep: list[int] = []
        ended: list[int] = []
        for i, m in enumerate(self._meta):
            if m.confirmed:
                unseen_s = now_s - m.last_seen_s
                max_lost_s = self.config.max_lost_s
                if m.hits < _YOUNG_HITS:
                    max_lost_s = min(max_lost_s, _YOUNG_MAX_LOST_S)
                alive = unseen_s <= max_lost_s
                if alive and unseen_s > _LEFT_VIEW_AFTER_S and self._inner is not None:
                    alive = bool(shapely.contains_xy(self._inner, self._x[i, 0], self._x[i, 1]))
            else:
                alive = m.misses < _TENTATIVE_MAX_MISSES
            if alive:
                keep.append(i)
            elif m.confirmed:
                ended.append(m.track_id)
        if len(keep) != len(self._meta):
            self._x, self._p = self._x[keep], self._p[keep]
            self._meta = [self._meta[i] for i in keep]
        return ended

    def _states(self, matched_ids: dict[int, int], det: FloorDetections) -> list[TrackState]:
        out: list[TrackState] = []
        for i, m in enumerate(self._meta):
            if not m.confirmed:
                continue
            j = matched_ids.get(m.track_id)
            observed = j is not None
            xy = (float(self._x[i, 0]), float(self._x[i, 1])) if observed else m.last_xy_m
            out.append(
                TrackState(
                    track_id=m.track_id,
                    xy_m=xy,
                    velocity_mps=(float(self._x[i, 2]), float(self._x[i, 3])),
                    observed=observed,
                    first_xy_m=m.first_xy_m,
                    last_seen_utc=m.last_seen_utc,
                    sources=dict(det.sources[j]) if j is not None else {},
                    score=float(det.score[j]) if j is not None else 0.0,
                    appearance=m.appearance,
                )
            )
        return out
