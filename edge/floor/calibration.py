"""Camera-to-floor calibration: a robust image-to-floor homography per camera, and where each camera sees.

Each camera's `Calibration` pairs >= 4 image points (pixels) with the same physical marks on the floor plan
(metres). The homography is fitted robustly (RANSAC, then least squares over the points that agree), its
mean reprojection error is measured in metres on the floor and checked against the calibration's
`max_error_m`, and a point left out of the fit is logged with how far off it is. Everything spatial in the
configuration (doors, car zones, staff areas) must be seen by at least one calibrated camera; both rules
are checked when the node starts, with errors naming the key path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np
import numpy.typing as npt
from shapely.geometry import LineString, Polygon, box
from shapely.geometry.base import BaseGeometry

from edge.config import Calibration, CameraConfig, ConfigError, NodeConfig
from edge.store_areas import MIN_AREA_M2, BoxLayout
from vision_models.arrays import Float64Array

log = logging.getLogger(__name__)

RANSAC_THRESHOLD_M = 0.25
"""A calibration point further than this from the robust fit is an outlier (a mis-measured mark)."""
_MIN_W = 1e-3
"""Image points whose homogeneous scale is below this lie at or beyond the horizon: not on the floor."""


class CalibrationError(ValueError):
    """A calibration that cannot be used: too few consistent points, degenerate, or too inaccurate."""


@dataclass(frozen=True)
class FloorProjection:
    """One camera's image-to-floor mapping.

    Attributes:
        camera_id: the camera's id.
        homography: float64 (3, 3), image pixels -> floor metres.
        error_m: mean reprojection error on the floor of the inlier calibration points, metres.
        inliers: bool (N,), which calibration points the robust fit kept.
        anchor: which point of a box stands on the floor: `bottom_center` or `center`.
        resolution_wh: the frame size the calibration points refer to, or None when not configured.
        view_m: the floor area this camera sees (image rectangle projected, cut at the horizon); None when
            the camera's `resolution_wh` is not configured.
    """

    camera_id: str
    homography: Float64Array
    error_m: float
    inliers: npt.NDArray[np.bool_]
    anchor: str
    resolution_wh: tuple[int, int] | None
    view_m: BaseGeometry | None

    def to_floor(self, points_px: npt.ArrayLike) -> tuple[Float64Array, npt.NDArray[np.bool_]]:
        """Project (N, 2) image points to floor metres.

        Returns the (N, 2) floor points and a bool (N,) mask of points that really lie on the floor (in
        front of the camera, below the horizon); masked-out rows are NaN.
        """
        pts = np.asarray(points_px, dtype=np.float64).reshape(-1, 2)
        homog = np.hstack([pts, np.ones((len(pts), 1))]) @ self.homography.T
        ok = homog[:, 2] > _MIN_W  # the fit keeps w > 0 on the floor's side (see `fit_homography`)
        out = np.full((len(pts), 2), np.nan)
        out[ok] = homog[ok, :2] / homog[ok, 2:3]
        return out, ok

    def to_image(self, points_m: npt.ArrayLike) -> Float64Array:
        """Floor points (N, 2) in metres to image pixels (N, 2): the inverse of `to_floor`."""
        pts = np.asarray(points_m, dtype=np.float64).reshape(-1, 2)
        homog = np.hstack([pts, np.ones((len(pts), 1))]) @ self._floor_to_image.T
        w = np.where(np.abs(homog[:, 2:3]) < 1e-12, 1e-12, homog[:, 2:3])
        return homog[:, :2] / w

    @cached_property
    def _floor_to_image(self) -> Float64Array:
        return np.asarray(np.linalg.inv(self.homography), dtype=np.float64)

    def px_per_metre(self, points_px: npt.ArrayLike) -> Float64Array:
        """(N,) the floor's local scale at each image point: pixels per metre (square root of the area
        ratio), so a vertical length in metres can be sized in pixels there."""
        return 1.0 / metres_per_px_scale(self.metres_per_pixel(points_px))

    def metres_per_pixel(self, points_px: npt.ArrayLike) -> Float64Array:
        """(N, 2, 2) Jacobian of the projection at each image point: floor metres per image pixel."""
        pts = np.asarray(points_px, dtype=np.float64).reshape(-1, 2)
        h = self.homography
        homog = np.hstack([pts, np.ones((len(pts), 1))]) @ h.T
        w = homog[:, 2:3]
        xy = homog[:, :2] / w
        # d(u/w)/dx = (h0x - u/w * h2x) / w, for each output row and input column.
        jac = (h[None, :2, :2] - xy[:, :, None] * h[None, 2:3, :2]) / w[:, :, None]
        return jac


def metres_per_px_scale(jac: Float64Array) -> Float64Array:
    """(N,) floor metres per image pixel of (N, 2, 2) `metres_per_pixel` Jacobians: the square root of the
    local area ratio."""
    return np.asarray(np.sqrt(np.abs(jac[:, 0, 0] * jac[:, 1, 1] - jac[:, 0, 1] * jac[:, 1, 0])), np.float64)


def fit_homography(calibration: Calibration) -> tuple[Float64Array, float, npt.NDArray[np.bool_]]:
    """Robust image-to-floor homography of one calibration.

    Returns the (3, 3) homography, the mean reprojection error of the inlier points in metres, and the
    inlier mask. Raises `CalibrationError` when the points are degenerate (collinear, repeated) or fewer
    than 4 agree with one another.
    """
    return fit_points(
        np.asarray(calibration.image_points_px, dtype=np.float64),
        np.asarray(calibration.floor_points_m, dtype=np.float64),
    )


def fit_points(src: Float64Array, dst: Float64Array) -> tuple[Float64Array, float, npt.NDArray[np.bool_]]:
    """`fit_homography` of (N, 2) image points `src` (pixels) and their (N, 2) floor marks `dst` (metres)."""
    n = len(src)
    if n < 4:
        raise CalibrationError(f"needs at least 4 point pairs, got {n}")
    if n == 4:
        h, _ = cv2.findHomography(src, dst, 0)
        mask = np.ones(n, dtype=bool)
    else:
        # RANSAC for every n >= 5. LMedS is no use with few points: any 4 of 6 fit exactly, so the median
        # residual is 0 whichever 4 it samples, and it can keep an ill-conditioned four and drop two good
        # points (seen: 1.5 m off at a mark that fits to 1 mm by least squares).
        h, m = cv2.findHomography(src, dst, cv2.RANSAC, RANSAC_THRESHOLD_M)
        mask = m.reshape(-1).astype(bool) if m is not None else np.zeros(n, dtype=bool)
        if h is not None and mask.sum() >= 4:
            # Least squares over the points that agree, then keep those the refined fit agrees with.
            refined, _ = cv2.findHomography(src[mask], dst[mask], 0)
            if refined is not None and np.isfinite(refined).all():
                h = refined
                agree = residuals_m(h, src, dst) <= RANSAC_THRESHOLD_M
                if agree.sum() >= mask.sum():
                    mask = agree
    if h is None or not np.isfinite(h).all() or abs(np.linalg.det(h)) < 1e-12:
        raise CalibrationError("the points are degenerate (three or more collinear, or repeated)")
    if mask.sum() < 4:
        raise CalibrationError(f"only {int(mask.sum())} of {n} points agree with one another; need 4")
    homog = np.hstack([src, np.ones((n, 1))]) @ h.T
    errors = residuals_m(h, src, dst)
    if not np.isfinite(errors[mask]).all():
        raise CalibrationError("a calibration point projects to the horizon; the points are inconsistent")
    # Keep a positive scale for points in front of the camera, so `to_floor` can tell them from points
    # beyond the horizon.
    if np.median(homog[mask, 2]) < 0:
        h = -h
    return h.astype(np.float64), float(errors[mask].mean()), mask


def residuals_m(h: npt.ArrayLike, src: Float64Array, dst: Float64Array) -> Float64Array:
    """Distance on the floor (metres) between each image point projected through `h` and its floor mark."""
    homog = np.hstack([src, np.ones((len(src), 1))]) @ np.asarray(h, dtype=np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        proj = homog[:, :2] / homog[:, 2:3]
    return np.asarray(np.linalg.norm(proj - dst, axis=1), dtype=np.float64)


def _view_polygon(homography: Float64Array, resolution_wh: tuple[int, int]) -> Polygon:
    """The floor area seen by a camera: its image rectangle projected, cut just below the horizon."""
    image = box(0.0, 0.0, float(resolution_wh[0]), float(resolution_wh[1]))
    a, b, c = homography[2]
    # Half-plane a*x + b*y + c >= limit, as a large polygon: keeps points well in front of the camera.
    limit = 0.02 * max(abs(c), 1e-9)
    big = 1e7
    if abs(b) > abs(a):
        ys = [(limit - c - a * x) / b for x in (-big, big)]
        far = big if b > 0 else -big
        half = Polygon([(-big, ys[0]), (big, ys[1]), (big, far), (-big, far)])
    elif abs(a) > 0:
        xs = [(limit - c - b * y) / a for y in (-big, big)]
        far = big if a > 0 else -big
        half = Polygon([(xs[0], -big), (xs[1], big), (far, big), (far, -big)])
    else:
        half = box(-big, -big, big, big)
    visible = image.intersection(half)
    if visible.is_empty or visible.area <= 0:
        return Polygon()
    corners = np.asarray(visible.exterior.coords, dtype=np.float64)
    homog = np.hstack([corners, np.ones((len(corners), 1))]) @ homography.T
    floor = homog[:, :2] / homog[:, 2:3]
    poly = Polygon(floor)
    return poly if poly.is_valid else poly.buffer(0)


def calibrate_camera(camera: CameraConfig) -> FloorProjection:
    """Fit one camera; `CalibrationError` when it has no calibration or it is too inaccurate."""
    if camera.calibration is None:
        raise CalibrationError("camera has no calibration; every camera that counts needs one")
    h, error_m, inliers = fit_homography(camera.calibration)
    if error_m > camera.calibration.max_error_m:
        raise CalibrationError(
            f"mean reprojection error {error_m:.3f} m exceeds max_error_m {camera.calibration.max_error_m} m;"
            " re-measure the floor marks"
        )
    if not inliers.all():
        src = np.asarray(camera.calibration.image_points_px, dtype=np.float64)
        dst = np.asarray(camera.calibration.floor_points_m, dtype=np.float64)
        off = residuals_m(h, src, dst)
        for k in np.flatnonzero(~inliers):
            log.warning(
                "camera %s: calibration point %d (image %s, floor %s) is %.2f m off the fit of the others;"
                " it was left out (re-measure it)",
                camera.id,
                k,
                camera.calibration.image_points_px[k],
                camera.calibration.floor_points_m[k],
                off[k],
            )
    return FloorProjection(
        camera_id=camera.id,
        homography=h,
        error_m=error_m,
        inliers=inliers,
        anchor=camera.anchor,
        resolution_wh=camera.resolution_wh,
        view_m=None if camera.resolution_wh is None else _view_polygon(h, camera.resolution_wh),
    )


def coverage_of(
    projections: Iterable[FloorProjection], config: NodeConfig, margin_m: float = 5.0
) -> BaseGeometry | None:
    """The floor area the cameras see together, within the floor plan grown by `margin_m`; None when a
    camera's frame size (so its view) is unknown."""
    x, y = config.floor.size_m
    bounds = box(-margin_m, -margin_m, x + margin_m, y + margin_m)
    seen: BaseGeometry = Polygon()
    for projection in projections:
        if projection.view_m is None:
            return None
        seen = seen.union(projection.view_m.intersection(bounds))
    return seen


def overlap_problems(layout: BoxLayout, seen: BaseGeometry, floor: BaseGeometry) -> list[tuple[str, str]]:
    """Where this box's cameras miss part of the overlap strip past a boundary with a neighbour."""
    problems: list[tuple[str, str]] = []
    for node_id, other in layout.neighbours.items():
        strip = layout.seen_area().intersection(other).intersection(floor)
        missed = strip.difference(seen)
        if missed.area >= MIN_AREA_M2:
            problems.append(
                (
                    "floor.overlap_m",
                    f"the cameras of {layout.node_id!r} miss {missed.area:.2f} m² of the "
                    f"{layout.overlap_m:g} m strip past the boundary with {node_id!r} (at x "
                    f"{missed.bounds[0]:.2f}..{missed.bounds[2]:.2f}, y {missed.bounds[1]:.2f}.."
                    f"{missed.bounds[3]:.2f} m): the hand-over needs both boxes to see it",
                )
            )
    return problems


def calibrate_node(config: NodeConfig, source: str = "<config>") -> dict[str, FloorProjection]:
    """Fit every camera and check that each door, car zone and staff area is seen by some camera.

    The view check needs every camera's `resolution_wh`; without it the check is skipped with a warning.

    Raises `ConfigError` listing every problem with its key path.
    """
    problems: list[tuple[str, str]] = []
    projections: dict[str, FloorProjection] = {}
    for i, camera in enumerate(config.cameras):
        try:
            projections[camera.id] = calibrate_camera(camera)
        except CalibrationError as exc:
            problems.append((f"cameras[{i}].calibration", f"camera {camera.id!r}: {exc}"))
    if problems:
        raise ConfigError(source, problems)
    floor = box(0, 0, config.floor.size_m[0], config.floor.size_m[1])
    coverage = coverage_of(projections.values(), config, margin_m=0.0)
    if coverage is None:
        unknown = [c.id for c in config.cameras if c.resolution_wh is None]
        log.warning(
            "camera(s) %s have no resolution_wh: cannot check that doors and zones are in view",
            ", ".join(unknown),
        )
        return projections
    seen = coverage.buffer(0.05)  # a line drawn to the very edge of the image is still seen
    if config.floor.areas:
        # A store served by several boxes: this box sees its own area and the strip past its boundaries.
        layout = BoxLayout.of(
            config.node_id, [(a.node_id, a.polygon_m) for a in config.floor.areas], config.floor.overlap_m
        )
        floor = layout.area
        problems += overlap_problems(layout, seen, box(0, 0, config.floor.size_m[0], config.floor.size_m[1]))

    def unseen(geometry: BaseGeometry, path: str, what: str) -> None:
        mine = geometry.intersection(floor)
        if not mine.is_empty and not seen.contains(mine):
            problems.append((path, f"{what} lies (partly) outside every camera's view"))

    for i, door in enumerate(config.doors):
        unseen(LineString(door.line_m), f"doors[{i}].line_m", f"door {door.id!r}")
    for i, car in enumerate(config.cars):
        unseen(Polygon(car.browse_zone_m), f"cars[{i}].browse_zone_m", f"car {car.id!r} browse zone")
    for i, area in enumerate(config.staff_areas):
        unseen(Polygon(area.polygon_m), f"staff_areas[{i}].polygon_m", f"staff area {area.id!r}")
    if problems:
        raise ConfigError(source, problems)
    return projections
