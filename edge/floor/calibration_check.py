"""A calibration check that cannot pass a wrong fit: every point pair judged by a fit of the others.

A homography through 4 pairs fits them exactly whatever they are, so the residuals of a fit on its own
points prove nothing (2 of 6 marks moved by 1 m once gave "error 0.000 m" and put people 7.7 m off). Here
each pair is left out in turn, the others are fitted with the node's own robust procedure
(`edge.floor.calibration.fit_points`), and the distance on the floor between the pair's mark and where its
image point lands is its held-out (leave-one-out) error, in metres.

The verdict of one camera's calibration:

- reject: a pair's held-out error above `calibration.max_loo_error_m` (0.3 m by default); the robust fit of
  all pairs leaving a pair out (a wrong mark, or a right one dropped for wrong ones: either way, re-measure);
  fewer than 6 pairs unless `calibration.allow_few_points`; pairs the fit cannot use (collinear, repeated);
  a mean error above `calibration.max_error_m`; a floor mark far outside the floor plan (pixels written as
  metres).
- warn: 4-5 pairs allowed by `allow_few_points`; marks nearly on one line, or bunched in under 10% of the
  image, so the fit is extrapolated over the rest of the view; an image point outside the frame.

`showroom edge check-config`, `showroom edge run --check` and `showroom hardware calibrate` all run
`check_node_calibration` / `check_camera`, so the three say the same thing.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from shapely.geometry import MultiPoint, Point, box

from edge.config import Calibration, CameraConfig, NodeConfig
from edge.floor.calibration import CalibrationError, fit_points
from edge.floor.calibration_report import CalibrationReport, Finding, PairCheck
from vision_models.arrays import Float64Array

MIN_PAIRS = 6
"""Pairs needed without `allow_few_points`: each pair then meets a fit of 5 others (one to spare)."""
MIN_HULL_FRACTION = 0.10
"""Marks whose convex hull covers less of the image than this leave most of the view extrapolated."""
MIN_SPREAD_RATIO = 0.10
"""Marks whose spread across their main direction is under this share of the spread along it lie nearly
on one line: the fit is poorly determined away from that line."""


def _project_m(h: Float64Array, point_px: Float64Array) -> Float64Array | None:
    """One image point through `h` (scale positive in front of the camera); None beyond the horizon."""
    homog = h @ np.array([point_px[0], point_px[1], 1.0])
    if homog[2] <= 1e-9:
        return None
    return np.asarray(homog[:2] / homog[2], dtype=np.float64)


def _held_out_errors(
    src: Float64Array, dst: Float64Array, discarded: npt.NDArray[np.bool_]
) -> tuple[list[float | None], list[str | None]]:
    """Per pair: its distance from a fit of the other pairs (inf beyond that fit's horizon), or None with
    why the others cannot be fitted.

    The pairs in `discarded` (left out by the robust fit of all pairs) stay out of every other pair's fit,
    so one wrong mark does not make its neighbours look wrong too; they already reject the calibration
    themselves, so this changes which pairs are named, never whether a calibration passes.
    """
    n = len(src)
    errors: list[float | None] = []
    why: list[str | None] = []
    for i in range(n):
        keep = (np.arange(n) != i) & ~discarded
        if keep.sum() < 4:  # too few left without the discarded pairs: judge by all the others
            keep = np.arange(n) != i
        if keep.sum() < 4:
            errors.append(None)
            why.append(None)
            continue
        try:
            h, _, _ = fit_points(src[keep], dst[keep])
        except CalibrationError as exc:
            errors.append(None)
            why.append(str(exc))
            continue
        landed = _project_m(h, src[i])
        errors.append(math.inf if landed is None else float(np.linalg.norm(landed - dst[i])))
        why.append(None)
    return errors, why


def _layout_warnings(src: Float64Array, resolution_wh: tuple[int, int] | None) -> list[Finding]:
    found: list[Finding] = []
    centred = src - src.mean(axis=0)
    eig = np.linalg.eigvalsh(centred.T @ centred / max(len(src), 1))
    along, across = math.sqrt(max(float(eig[1]), 0.0)), math.sqrt(max(float(eig[0]), 0.0))
    if along > 0 and across / along < MIN_SPREAD_RATIO:
        found.append(
            Finding(
                "layout",
                "calibration",
                f"the marks lie nearly on one line in the image (spread across it {across:.0f} px, along it "
                f"{along:.0f} px): the fit is poorly determined away from that line; add marks off it",
            )
        )
    if resolution_wh is not None:
        w, h = resolution_wh
        hull = MultiPoint([tuple(p) for p in src.tolist()]).convex_hull
        share = hull.intersection(box(0, 0, w, h)).area / float(w * h)
        if share < MIN_HULL_FRACTION:
            found.append(
                Finding(
                    "layout",
                    "calibration",
                    f"the marks cover only {100 * share:.1f}% of the {w} x {h} image (convex hull; at least "
                    f"{100 * MIN_HULL_FRACTION:.0f}% wanted): the rest of the view is extrapolated; "
                    "add marks towards the image's corners",
                )
            )
        for i, (x, y) in enumerate(src.tolist()):
            if not (0 <= x <= w and 0 <= y <= h):
                found.append(
                    Finding(
                        "frame",
                        f"calibration[{i}]",
                        f"image_points_px[{i}] = ({x:g}, {y:g}) lies outside the {w} x {h} frame",
                    )
                )
    return found


def _units_problems(dst: Float64Array, floor_size_m: tuple[float, float] | None) -> list[Finding]:
    """Floor marks further outside the plan than the plan is large: almost surely pixels, not metres."""
    if floor_size_m is None:
        return []
    fw, fh = floor_size_m
    plan = box(0, 0, fw, fh)
    far = max(fw, fh)
    found = []
    for i, (x, y) in enumerate(dst.tolist()):
        off = plan.distance(Point(x, y))
        if off > far:
            found.append(
                Finding(
                    "units",
                    f"calibration[{i}]",
                    f"floor_points_m[{i}] = ({x:g}, {y:g}) lies {off:.0f} m outside the {fw:g} x {fh:g} m "
                    "floor plan: pixels written as metres? Floor marks are measured on the plan, in metres",
                )
            )
    return found


def check_calibration(
    calibration: Calibration,
    *,
    camera_id: str,
    camera_index: int = 0,
    resolution_wh: tuple[int, int] | None = None,
    floor_size_m: tuple[float, float] | None = None,
    allow_few_points: bool | None = None,
) -> CalibrationReport:
    """Check one calibration; `allow_few_points` overrides the calibration's own flag when given."""
    src = np.asarray(calibration.image_points_px, dtype=np.float64)
    dst = np.asarray(calibration.floor_points_m, dtype=np.float64)
    n = len(src)
    limit = calibration.max_loo_error_m
    few_ok = calibration.allow_few_points if allow_few_points is None else allow_few_points
    problems: list[Finding] = []
    warnings: list[Finding] = []

    if n < MIN_PAIRS:
        checked = "no pair can be checked against the others" if n == 4 else "each pair meets an exact fit"
        if few_ok:
            warnings.append(
                Finding("count", "calibration", f"only {n} pairs ({checked}); {MIN_PAIRS} or more are safer")
            )
        else:
            problems.append(
                Finding(
                    "count",
                    "calibration",
                    f"only {n} pairs; at least {MIN_PAIRS} are needed so that every pair is checked against "
                    f"a fit of the others ({checked}). Add marks, or set calibration.allow_few_points: true",
                )
            )

    homography: Float64Array | None = None
    fit_error: float | None = None
    used = np.zeros(n, dtype=bool)
    fit_errors: list[float | None] = [None] * n
    try:
        homography, fit_error, used = fit_points(src, dst)
    except CalibrationError as exc:
        problems.append(Finding("fit", "calibration", f"the pairs cannot be fitted: {exc}"))
    if homography is not None:
        fit_errors = []
        for i in range(n):
            landed = _project_m(homography, src[i])
            fit_errors.append(math.inf if landed is None else float(np.linalg.norm(landed - dst[i])))
        if fit_error is not None and fit_error > calibration.max_error_m:
            problems.append(
                Finding(
                    "fit",
                    "calibration",
                    f"mean error of the kept pairs {fit_error:.3f} m exceeds max_error_m "
                    f"{calibration.max_error_m} m",
                )
            )

    discarded = ~used if homography is not None else np.zeros(n, dtype=bool)
    held_out, why = _held_out_errors(src, dst, discarded)
    rejected = np.zeros(n, dtype=bool)
    for i in range(n):
        reasons = []
        err = held_out[i]
        if err is not None and err > limit:
            where = "beyond the horizon" if math.isinf(err) else f"{err:.2f} m from its mark"
            reasons.append(
                f"held-out error {err:.2f} m > {limit:.2f} m "
                f"(through a fit of the other pairs its image point lands {where})"
            )
        if why[i] is not None:
            reasons.append(f"cannot be checked: the other pairs alone cannot be fitted ({why[i]})")
        if homography is not None and not used[i]:
            off = fit_errors[i]
            shown = "beyond the horizon" if off is None or math.isinf(off) else f"{off:.2f} m off"
            reasons.append(f"the robust fit of all {n} pairs left it out ({shown})")
        if reasons:
            rejected[i] = True
            problems.append(
                Finding(
                    "pair",
                    f"calibration[{i}]",
                    f"pair {i} (image_points_px[{i}] = {_xy(src[i])} px, "
                    f"floor_points_m[{i}] = {_xy(dst[i])} m): "
                    + "; ".join(reasons)
                    + "; re-measure this mark",
                )
            )

    if rejected.sum() > n / 2 and discarded.any():
        problems.append(
            Finding(
                "fit",
                "calibration",
                f"{int(rejected.sum())} of {n} pairs disagree with the others: too many to tell the wrong "
                "marks from the right ones; re-measure the named pairs (or add marks)",
            )
        )
    for finding in _units_problems(dst, floor_size_m):
        problems.append(finding)
        rejected[int(finding.key[len("calibration[") : -1])] = True
    warnings += _layout_warnings(src, resolution_wh)

    pairs = tuple(
        PairCheck(
            index=i,
            image_px=(float(src[i, 0]), float(src[i, 1])),
            floor_m=(float(dst[i, 0]), float(dst[i, 1])),
            held_out_error_m=held_out[i],
            fit_error_m=fit_errors[i],
            used_by_fit=bool(used[i]),
            rejected=bool(rejected[i]),
        )
        for i in range(n)
    )
    return CalibrationReport(
        camera_id=camera_id,
        camera_index=camera_index,
        max_loo_error_m=limit,
        pairs=pairs,
        homography=homography,
        fit_error_m=fit_error,
        problems=tuple(problems),
        warnings=tuple(warnings),
    )


def _xy(point: Float64Array) -> str:
    return f"({point[0]:g}, {point[1]:g})"


def check_camera(
    config: NodeConfig, camera_index: int, *, allow_few_points: bool | None = None
) -> CalibrationReport:
    """Check camera `camera_index` of `config`; a camera without a calibration is rejected."""
    camera: CameraConfig = config.cameras[camera_index]
    if camera.calibration is None:
        return CalibrationReport(
            camera_id=camera.id,
            camera_index=camera_index,
            max_loo_error_m=Calibration.model_fields["max_loo_error_m"].default,
            pairs=(),
            homography=None,
            fit_error_m=None,
            problems=(
                Finding(
                    "fit", "calibration", "camera has no calibration; every camera that counts needs one"
                ),
            ),
            warnings=(),
        )
    return check_calibration(
        camera.calibration,
        camera_id=camera.id,
        camera_index=camera_index,
        resolution_wh=camera.resolution_wh,
        floor_size_m=config.floor.size_m,
        allow_few_points=allow_few_points,
    )


def check_node_calibration(config: NodeConfig) -> list[CalibrationReport]:
    """Every camera's calibration check, in config order."""
    return [check_camera(config, i) for i in range(len(config.cameras))]


def calibration_problems(reports: list[CalibrationReport]) -> list[tuple[str, str]]:
    """(key path, message) of every reason to reject, for a `ConfigError`."""
    return [
        (report.key_path(f.key), f"camera {report.camera_id!r}: {f.message}")
        for report in reports
        for f in report.problems
    ]
