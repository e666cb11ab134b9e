"""One floor detection per person, however many of the node's overlapping cameras see them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from edge.floor.projection import CameraFloor
from edge.tracking import FloorDetections


def fuse_cameras(views: Sequence[CameraFloor], radius_m: float) -> FloorDetections:
    """Every camera's kept detections at one time step (`views` in sorted camera order), with those of one
    person seen by several cameras merged: closer than `radius_m` metres on the floor, from different cameras.

    Merged positions are information-weighted means (float64 (2,) metres, covariance the inverse of the
    summed information); the merged score is the highest, the merged stature the mean of those known;
    `sources` maps each camera to its box's row. Pairs are taken closest first, so the result does not
    depend on camera order beyond the sorted camera ids. No detections: `FloorDetections.empty()`.
    """
    sources = [{view.camera_id: int(i)} for view in views for i in view.index]
    if not sources:
        return FloorDetections.empty()
    return _merge(
        np.concatenate([view.xy_m for view in views]),
        np.concatenate([view.cov_m2 for view in views]),
        np.concatenate([view.score for view in views]),
        np.concatenate([_statures(view) for view in views]),
        sources,
        radius_m,
    )


def _statures(view: CameraFloor) -> npt.NDArray[np.float64]:
    return np.full(len(view.index), np.nan) if view.stature_m is None else view.stature_m


def _merge(
    xy: npt.NDArray[np.float64],
    cov: npt.NDArray[np.float64],
    score: npt.NDArray[np.float64],
    stature: npt.NDArray[np.float64],
    sources: list[dict[str, int]],
    radius_m: float,
) -> FloorDetections:
    cameras = {next(iter(s)) for s in sources}
    if len(cameras) < 2:
        return FloorDetections(xy, cov, score, tuple(sources), stature_m=stature)
    groups: list[list[int]] = [[i] for i in range(len(sources))]
    group_of = list(range(len(sources)))
    dist = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    pairs = [
        (dist[i, j], i, j) for i in range(len(xy)) for j in range(i + 1, len(xy)) if dist[i, j] <= radius_m
    ]
    for _, i, j in sorted(pairs):
        gi, gj = group_of[i], group_of[j]
        if gi == gj:
            continue
        cams_i = {c for k in groups[gi] for c in sources[k]}
        cams_j = {c for k in groups[gj] for c in sources[k]}
        if cams_i & cams_j:
            continue  # two detections from one camera are two people
        groups[gi] += groups[gj]
        for k in groups[gj]:
            group_of[k] = gi
        groups[gj] = []
    out_xy, out_cov, out_score, out_stature, out_src = [], [], [], [], []
    for members in groups:
        if not members:
            continue
        info = sum(np.linalg.inv(cov[k]) for k in members)
        fused_cov = np.linalg.inv(info)
        fused_xy = fused_cov @ sum(np.linalg.inv(cov[k]) @ xy[k] for k in members)
        out_xy.append(fused_xy)
        out_cov.append(fused_cov)
        out_score.append(max(score[k] for k in members))
        known = [stature[k] for k in members if np.isfinite(stature[k])]
        out_stature.append(sum(known) / len(known) if known else np.nan)
        merged: dict[str, int] = {}
        for k in members:
            merged.update(sources[k])
        out_src.append(merged)
    return FloorDetections(
        np.array(out_xy),
        np.array(out_cov),
        np.array(out_score),
        tuple(out_src),
        stature_m=np.array(out_stature, dtype=np.float64),
    )
