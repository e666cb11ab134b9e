"""The default tracker: constant-velocity Kalman filters in floor metres with two-stage association.

Why this shape, for people walking among display cars:
- Tracking on the floor plan (not in pixels) makes the motion model physical (metres, m/s) and lets one
  tracker serve every camera of a node: overlapping views are fused before association, and a person who
  walks from one camera's view into another's keeps their track.
- Each detection carries its own floor uncertainty (the homography's metres-per-pixel at its foot point
  times a fraction of the box height), so far, small people get wide gates and near people tight ones.
- Association is ByteTrack's two stages: confident detections first against every track, then the
  low-score leftovers (a person half hidden by a car) against the tracks still unmatched (costs and
  matching: `edge.tracking.association`; the Kalman filters: `edge.tracking.motion`).
- Tracks start tentative and are confirmed after `confirm_hits` matches; only confirmed tracks are reported.
  Confident detections start them, and weak ones of a person's size that nobody explains, confirmed only
  once they have walked (`edge.tracking.birth`): a far, small person scores low on every frame.
- A confirmed track that loses its detections keeps predicting (with a growing uncertainty) for
  `max_lost_s` seconds, so a person hidden behind a car or a pillar is re-linked to the same track, but only
  within walking reach of where they were last seen and of where they are predicted (people do not run
  between display cars). A short track (a few matches: often a false positive) is not kept that long, and
  a track lost inside a display car's interior is not re-linked to anyone outside it: the person is sitting
  in the car.
- At most `max_tracks` tracks live at once (tentative ones included): in a crowd beyond it the most
  confident newcomers get the free places and the rest are returned as `untracked`, for the heartbeat to
  report; time and memory per step stay bounded.
- With a re-identification model (`tracker.reid`), appearance decides where motion cannot: a hidden
  person's track is re-linked only to someone who looks like them, and where two tracks could take the same
  detection (people side by side) the one whose person looks alike is cheaper. Boxes are embedded on
  request within a per-step budget (`edge.tracking.appearance`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import shapely
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from edge.config import TrackerConfig
from edge.tracking.appearance import FIRST_SAMPLES, StepAppearance, appearance_cost, blend
from edge.tracking.association import greedy_match, motion_cost, near_last_seen, optimal_match
from edge.tracking.base import FloorDetections, TrackerStep, TrackingError, TrackState
from edge.tracking.birth import plausible_people, start_from, walked
from edge.tracking.motion import KalmanBank
from vision_models.arrays import XY, Float64Array

_EDGE_MARGIN_M = 0.5
_LEFT_VIEW_AFTER_S = 0.5
"""A lost track predicted within `_EDGE_MARGIN_M` of the edge of the cameras' view (or beyond) for longer
than this has walked out of view."""
_TENTATIVE_MAX_MISSES = 1
_YOUNG_HITS = 10
_YOUNG_MAX_LOST_S = 1.0
"""A track matched fewer than `_YOUNG_HITS` times (two seconds at 5 fps) is kept for only this long once
lost: too little evidence to coast on (a false positive's track must not wait to take over someone else)."""
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
    strong: bool = True
    """Matched a detection of at least `new_track_score`; a track born from weak detections is not, until
    it does."""
    sightings: list[tuple[Float64Array, Float64Array]] = field(default_factory=list)
    """While tentative: each matched detection's position (2,) and covariance (2, 2), to judge whether a
    track started from weak detections has walked."""

    def learn_appearance(self, embedding: Float64Array, now_s: float) -> None:
        """Fold one more embedding of this track's person into its running appearance."""
        self.appearance = blend(self.appearance, self.appearance_samples, embedding)
        self.appearance_samples += 1
        self.appearance_at_s = now_s


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
        interiors). A track last seen there is re-linked only to a detection within
        `association.HIDEOUT_REACH_M` of that spot: the person is sitting in the car, and whoever walks by
        outside is someone else. Getting out later is a new track, which the analytics join to the visitor
        parked in the car."""
        self.config = config or TrackerConfig()
        self._inner: BaseGeometry | None = None
        if coverage_m is not None and not coverage_m.is_empty:
            self._inner = coverage_m.buffer(-_EDGE_MARGIN_M)
            shapely.prepare(self._inner)
        self._hideouts: BaseGeometry | None = None
        if hideouts_m is not None and not hideouts_m.is_empty:
            self._hideouts = hideouts_m
            shapely.prepare(self._hideouts)
        self._kf = KalmanBank(self.config.accel_mps2, self.config.max_speed_mps)
        self._meta: list[_Meta] = []
        self._next_id = 1
        self._t0: datetime | None = None
        self._last_s: float | None = None
        self.embedded = 0
        """Boxes embedded by the re-identification model so far (its CPU cost is per box)."""

    # ---------------------------------------------------------------------------------------------
    # Costs of pairing tracks (rows) with detections (columns)
    # ---------------------------------------------------------------------------------------------

    def _cost(
        self, track_idx: list[int], det: FloorDetections, det_idx: list[int], now_s: float
    ) -> Float64Array:
        """Negative log-likelihood of each detection under each track's prediction; gated pairs are inf."""
        if not track_idx or not det_idx:
            return np.zeros((len(track_idx), len(det_idx)))
        unseen_s = np.array([now_s - self._meta[i].last_seen_s for i in track_idx])
        return motion_cost(
            self._kf.x[track_idx],
            self._kf.p[track_idx],
            self._last_xy(track_idx),
            unseen_s,
            det,
            det_idx,
            self.config.max_speed_mps,
            self._hideouts,
        )

    def _appearance_cost(
        self, cost: Float64Array, track_idx: list[int], det_idx: list[int], app: StepAppearance
    ) -> Float64Array:
        reid = self.config.reid
        assert reid is not None
        appearances = [self._meta[i].appearance for i in track_idx]
        lost = [self._meta[i].misses > 0 for i in track_idx]
        return appearance_cost(cost, appearances, lost, det_idx, app, reid)

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
        return bool(looked_at_m.distance(Point(self._kf.x[i, 0], self._kf.x[i, 1])) <= _EDGE_MARGIN_M)

    def _near_last_seen(
        self, track_idx: list[int], det: FloorDetections, det_idx: list[int], dt: float
    ) -> Float64Array:
        """Distance from each track's last observed position to each detection; beyond a stride is inf."""
        return near_last_seen(self._last_xy(track_idx), det, det_idx, self.config.max_speed_mps, dt)

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
        self._kf.predict(dt)

        cfg = self.config
        high = [j for j in range(len(detections)) if detections.score[j] >= cfg.high_score]
        low = [j for j in range(len(detections)) if detections.score[j] < cfg.high_score]
        high_set = set(high)
        confirmed = [i for i, m in enumerate(self._meta) if m.confirmed]
        tentative = [i for i, m in enumerate(self._meta) if not m.confirmed]
        matches: dict[int, int] = {}

        app = StepAppearance(cfg.reid, detections) if cfg.reid and detections.embed is not None else None

        # Stage 1: confident detections against every confirmed track (observed or recently lost).
        cost = self._cost(confirmed, detections, high, now_s)
        if app is not None:
            cost = self._appearance_cost(cost, confirmed, high, app)
        for r, c in optimal_match(cost):
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
        # Stage 4: remaining confident detections against tentative tracks; a track started from weak
        # detections is continued by weak ones of a person's size too.
        plausible = plausible_people(detections, cfg)
        used = set(matches.values())
        left_det = [j for j in range(len(detections)) if j not in used and (j in high_set or plausible[j])]
        cost = self._cost(tentative, detections, left_det, now_s)
        weak_cols = [c for c, j in enumerate(left_det) if j not in high_set]
        for r, i in enumerate(tentative):
            if self._meta[i].strong:
                cost[r, weak_cols] = np.inf
        for r, c in greedy_match(cost):
            matches[tentative[r]] = left_det[c]

        rows = list(matches)
        cols = [matches[i] for i in rows]
        self._kf.update(rows, detections.xy_m[cols], detections.cov_m2[cols])
        for i, j in matches.items():
            m = self._meta[i]
            if not m.strong and detections.score[j] >= cfg.new_track_score:
                # A confident detection on a tentative track started weak: its evidence is counted afresh,
                # as for a track started confidently (static clutter scores high now and then).
                m.strong = True
                m.hits = 0 if not m.confirmed else m.hits
            m.hits += 1
            m.misses = 0
            m.last_seen_utc = ts_utc
            m.last_seen_s = now_s
            m.last_xy_m = (float(detections.xy_m[j, 0]), float(detections.xy_m[j, 1]))
            if not m.confirmed:
                m.sightings.append((detections.xy_m[j], detections.cov_m2[j]))
                m.confirmed = m.hits >= cfg.confirm_hits and (m.strong or walked(m.sightings, cfg))
                if m.confirmed:
                    m.sightings = []
        for i, m in enumerate(self._meta):
            if i not in matches and self._looked_at(looked_at_m, i):
                m.misses += 1

        unmatched = [i for i in confirmed if i not in matches]
        births = start_from(
            detections,
            set(matches.values()),
            plausible,
            self._last_xy(unmatched),
            np.array([now_s - self._meta[i].last_seen_s for i in unmatched]),
            cfg,
        )
        if app is not None:
            self._learn_appearance(matches, births, app, now_s)
        matched_ids = {self._meta[i].track_id: j for i, j in matches.items()}
        ended = self._prune(now_s)
        births, untracked = self._admit(births, detections)
        for j in births:
            self._start(ts_utc, now_s, detections, j)
            if app is not None and (embedding := app.get(j)) is not None:
                self._meta[-1].learn_appearance(embedding, now_s)
            if self._meta[-1].confirmed:
                matched_ids[self._meta[-1].track_id] = j
        if app is not None:
            self.embedded += app.embedded
        return TrackerStep(tracks=self._states(matched_ids, detections), ended=ended, untracked=untracked)

    def close(self) -> list[int]:
        ended = [m.track_id for m in self._meta if m.confirmed]
        self._kf.clear()
        self._meta = []
        return ended

    @property
    def tracks_alive(self) -> int:
        return len(self._meta)

    # ---------------------------------------------------------------------------------------------

    def _start(self, ts_utc: datetime, now_s: float, det: FloorDetections, j: int) -> None:
        xy = det.xy_m[j]
        self._kf.append(xy, det.cov_m2[j])
        point = (float(xy[0]), float(xy[1]))
        strong = bool(det.score[j] >= self.config.new_track_score)
        confirmed = self.config.confirm_hits <= 1 and strong
        self._meta.append(
            _Meta(
                self._next_id,
                1,
                0,
                confirmed,
                point,
                point,
                ts_utc,
                now_s,
                strong=strong,
                sightings=[(det.xy_m[j], det.cov_m2[j])],
            )
        )
        self._next_id += 1

    def _admit(self, births: list[int], det: FloorDetections) -> tuple[list[int], tuple[int, ...]]:
        """The births that fit within `max_tracks` (the most confident first, in their given order), and
        the detections left untracked."""
        room = max(0, self.config.max_tracks - len(self._meta))
        if len(births) <= room:
            return births, ()
        chosen = set(sorted(births, key=lambda j: (-det.score[j], j))[:room])
        return [j for j in births if j in chosen], tuple(sorted(j for j in births if j not in chosen))

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
                    alive = bool(shapely.contains_xy(self._inner, self._kf.x[i, 0], self._kf.x[i, 1]))
            else:
                alive = m.misses < _TENTATIVE_MAX_MISSES
            if alive:
                keep.append(i)
            elif m.confirmed:
                ended.append(m.track_id)
        if len(keep) != len(self._meta):
            self._kf.keep(keep)
            self._meta = [self._meta[i] for i in keep]
        return ended

    def _states(self, matched_ids: dict[int, int], det: FloorDetections) -> list[TrackState]:
        out: list[TrackState] = []
        for i, m in enumerate(self._meta):
            if not m.confirmed:
                continue
            j = matched_ids.get(m.track_id)
            observed = j is not None
            xy = (float(self._kf.x[i, 0]), float(self._kf.x[i, 1])) if observed else m.last_xy_m
            out.append(
                TrackState(
                    track_id=m.track_id,
                    xy_m=xy,
                    velocity_mps=(float(self._kf.x[i, 2]), float(self._kf.x[i, 3])),
                    observed=observed,
                    first_xy_m=m.first_xy_m,
                    last_seen_utc=m.last_seen_utc,
                    sources=dict(det.sources[j]) if j is not None else {},
                    score=float(det.score[j]) if j is not None else 0.0,
                    appearance=m.appearance,
                )
            )
        return out
