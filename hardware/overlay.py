"""Drawing the floor plan into a camera's image: the installer's eye check of a calibration.

Everything is drawn on the floor in metres and projected into the image through the inverse of the camera's
image-to-floor homography, so a wrong calibration shows as a grid that does not lie on the floor tiles, a
door line off the door, car zones beside their cars. Lines are sampled along their length and cut where
they pass the camera's horizon (the part of the floor plane behind the camera has no place in the image).
"""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import numpy.typing as npt

from edge.config import NodeConfig
from edge.floor.calibration_report import CalibrationReport
from vision_models.arrays import Float64Array

Image = npt.NDArray[np.uint8]
Colour = tuple[int, int, int]

GRID = (200, 200, 200)
GRID_5M = (255, 255, 255)
DOOR = (40, 40, 230)
BROWSE = (220, 200, 0)
INTERIOR = (230, 120, 0)
STAFF = (200, 0, 200)
GOOD = (60, 200, 60)
FAIR = (0, 170, 255)
BAD = (0, 0, 255)
_SAMPLES_PER_M = 10


def grey_canvas(resolution_wh: tuple[int, int]) -> Image:
    """A mid-grey BGR image of `resolution_wh` (w, h) pixels, for a camera without a snapshot."""
    w, h = resolution_wh
    return np.full((h, w, 3), 96, dtype=np.uint8)


def error_colour(error_m: float | None, limit_m: float) -> Colour:
    """Green within half the limit, orange up to it, red beyond it (or unknown)."""
    if error_m is None or not math.isfinite(error_m) or error_m > limit_m:
        return BAD
    return GOOD if error_m <= limit_m / 2 else FAIR


class FloorPainter:
    """Draws floor-plan geometry (metres) into an image through `floor_to_image` (3 x 3)."""

    def __init__(self, image: Image, image_to_floor: Float64Array) -> None:
        self.image = image
        self.floor_to_image = np.linalg.inv(image_to_floor)
        h, w = image.shape[:2]
        self._limit = 4.0 * max(w, h)

    def to_image(self, points_m: npt.ArrayLike) -> tuple[Float64Array, npt.NDArray[np.bool_]]:
        """(N, 2) floor points -> (N, 2) pixels, and whether each is in front of the camera, near the view."""
        pts = np.asarray(points_m, dtype=np.float64).reshape(-1, 2)
        homog = np.hstack([pts, np.ones((len(pts), 1))]) @ self.floor_to_image.T
        scale = homog[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            px = homog[:, :2] / scale[:, None]
        ok = (scale > 1e-9) & np.isfinite(px).all(axis=1) & (np.abs(px) < self._limit).all(axis=1)
        return px, ok

    def polyline(
        self, points_m: npt.ArrayLike, colour: Colour, thickness: int = 1, closed: bool = False
    ) -> None:
        """A floor polyline, sampled every 10 cm, cut where it leaves the camera's side of the horizon."""
        pts = np.asarray(points_m, dtype=np.float64).reshape(-1, 2)
        if closed:
            pts = np.vstack([pts, pts[:1]])
        for a, b in itertools.pairwise(pts):
            steps = max(2, math.ceil(float(np.linalg.norm(b - a)) * _SAMPLES_PER_M) + 1)
            samples = a + (b - a) * np.linspace(0.0, 1.0, steps)[:, None]
            px, ok = self.to_image(samples)
            run: list[list[int]] = []
            for point, good in zip(px, ok, strict=True):
                if good:
                    run.append([round(point[0]), round(point[1])])
                    continue
                self._draw_run(run, colour, thickness)
                run = []
            self._draw_run(run, colour, thickness)

    def _draw_run(self, run: list[list[int]], colour: Colour, thickness: int) -> None:
        if len(run) >= 2:
            cv2.polylines(
                self.image, [np.asarray(run, dtype=np.int32)], False, colour, thickness, cv2.LINE_AA
            )

    def label(self, point_m: npt.ArrayLike, text: str, colour: Colour) -> None:
        px, ok = self.to_image(point_m)
        if ok[0]:
            text_at(self.image, text, (round(px[0, 0]) + 4, round(px[0, 1]) - 4), colour)

    def grid(self, size_m: tuple[float, float], step_m: float = 1.0) -> None:
        """Lines every `step_m` across the floor plan; every 5th line brighter and labelled."""
        width, depth = size_m
        for k in range(int(width // step_m) + 1):
            x = k * step_m
            bold = k % 5 == 0
            self.polyline([[x, 0.0], [x, depth]], GRID_5M if bold else GRID, 1)
        for k in range(int(depth // step_m) + 1):
            y = k * step_m
            bold = k % 5 == 0
            self.polyline([[0.0, y], [width, y]], GRID_5M if bold else GRID, 1)
        placed: list[Float64Array] = []
        for k in range(0, int(width // step_m) + 1, 5):
            for j in range(0, int(depth // step_m) + 1, 5):
                at = [k * step_m, j * step_m]
                px, ok = self.to_image(at)
                # Near the horizon the labels crowd together: keep only those with room around them.
                if ok[0] and all(np.linalg.norm(px[0] - q) > 60 for q in placed):
                    placed.append(px[0])
                    self.label(at, f"{at[0]:g},{at[1]:g}", GRID_5M)


def text_at(image: Image, text: str, org: tuple[int, int], colour: Colour, scale: float = 0.45) -> None:
    """Text with a dark outline, readable on any background."""
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def draw_calibration(image: Image, report: CalibrationReport, config: NodeConfig) -> Image:
    """The floor grid (1 m), doors, car zones and staff areas projected through the calibration's robust fit,
    and each mark: its image point (dot) joined to where its floor position projects (cross), coloured by its
    held-out error. Draws on a copy of `image` (BGR) and returns it."""
    out = image.copy()
    limit = report.max_loo_error_m
    if report.homography is not None:
        painter = FloorPainter(out, report.homography)
        painter.grid(config.floor.size_m)
        fw, fh = config.floor.size_m
        painter.polyline([[0.0, 0.0], [fw, 0.0], [fw, fh], [0.0, fh]], GRID_5M, 2, closed=True)
        for car in config.cars:
            painter.polyline(car.browse_zone_m, BROWSE, 2, closed=True)
            painter.polyline(car.interior_zone_m, INTERIOR, 2, closed=True)
            painter.label(car.interior_zone_m[0], car.id, BROWSE)
        for area in config.staff_areas:
            painter.polyline(area.polygon_m, STAFF, 2, closed=True)
            painter.label(area.polygon_m[0], area.id, STAFF)
        for door in config.doors:
            painter.polyline(door.line_m, DOOR, 3)
            painter.label(door.line_m[0], door.id, DOOR)
    for pair in report.pairs:
        colour = BAD if pair.rejected else error_colour(pair.held_out_error_m, limit)
        at = (round(pair.image_px[0]), round(pair.image_px[1]))
        if report.homography is not None:
            landed, ok = FloorPainter(out, report.homography).to_image(pair.floor_m)
            if ok[0]:
                to = (round(landed[0, 0]), round(landed[0, 1]))
                cv2.line(out, at, to, colour, 2, cv2.LINE_AA)
                cv2.drawMarker(out, to, colour, cv2.MARKER_CROSS, 14, 2, cv2.LINE_AA)
        cv2.circle(out, at, 5, colour, -1, cv2.LINE_AA)
        cv2.circle(out, at, 6, (0, 0, 0), 1, cv2.LINE_AA)
        err = pair.held_out_error_m
        shown = "-" if err is None else ("inf" if not math.isfinite(err) else f"{err:.2f} m")
        text_at(out, f"[{pair.index}] {shown}", (at[0] + 8, at[1] + 16), colour)
    verdict = {"ok": "OK", "warn": "OK with warnings", "reject": "REJECTED"}[report.verdict]
    worst = report.held_out_max_m
    worst_text = "-" if worst is None else f"{worst:.2f} m"
    title = f"{report.camera_id}: {verdict}  held-out max {worst_text} (limit {limit:.2f} m)"
    cv2.rectangle(out, (0, 0), (out.shape[1], 28), (0, 0, 0), -1)
    text_at(out, title, (8, 20), BAD if report.verdict == "reject" else GOOD, 0.55)
    return out
