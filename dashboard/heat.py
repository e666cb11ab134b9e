"""What the floor heatmap shows: the floor's heat apart from the time people spent inside display cars,
and where its colour scale stops. Pure: arrays in, arrays and numbers out.

People sitting in a display car pile up hundreds of person-seconds a minute in a few cells; drawn on the
same scale as the floor they would turn the rest of the floor into one pale colour. So the cells inside each
car's interior are taken out of the floor map and reported per car, and the colour scale tops out at a high
percentile of the occupied floor cells (busier cells take the top colour), which the legend says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

CLIP_PERCENTILE = 99.0
"""The colour scale's top: this percentile of the occupied floor cells' person-seconds."""


@dataclass(frozen=True)
class FloorHeat:
    floor: npt.NDArray[np.float64]
    """Person-seconds per cell (ny, nx) outside every car's interior."""
    inside_s: dict[str, float]
    """Person-seconds inside each car's interior, by car id."""
    colour_top_s: float
    """Where the colour scale ends (person-seconds); busier cells take its top colour."""
    busiest_s: float
    """The busiest floor cell's person-seconds."""

    @property
    def clipped(self) -> bool:
        return self.busiest_s > self.colour_top_s


def zone_mask(
    polygon_m: Sequence[tuple[float, float]], shape: tuple[int, int], cell_m: float
) -> npt.NDArray[np.bool_]:
    """Cells (ny, nx) whose centre lies inside the polygon (floor metres, y down the plan)."""
    mask = np.zeros(shape, dtype=bool)
    if len(polygon_m) < 3:
        return mask
    contour = np.array(polygon_m, dtype=np.float32).reshape(-1, 1, 2)
    xs, ys = contour[:, 0, 0], contour[:, 0, 1]
    # Only the cells under the polygon's bounding box are tested.
    ix0, ix1 = max(0, int(xs.min() / cell_m)), min(shape[1], int(np.ceil(xs.max() / cell_m)))
    iy0, iy1 = max(0, int(ys.min() / cell_m)), min(shape[0], int(np.ceil(ys.max() / cell_m)))
    for iy in range(iy0, iy1):
        for ix in range(ix0, ix1):
            centre = ((ix + 0.5) * cell_m, (iy + 0.5) * cell_m)
            mask[iy, ix] = cv2.pointPolygonTest(contour, centre, False) >= 0
    return mask


def floor_heat(
    person_seconds: npt.NDArray[np.floating],
    cell_m: float,
    interiors_m: dict[str, Sequence[tuple[float, float]]],
    percentile: float = CLIP_PERCENTILE,
) -> FloorHeat:
    """Split the grid into the floor and the time inside each car (by its interior polygon), and find
    the floor's colour-scale top."""
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    grid = np.nan_to_num(np.asarray(person_seconds, dtype=np.float64), nan=0.0)
    grid = np.where(grid > 0, grid, 0.0)
    inside_s: dict[str, float] = {}
    floor = grid.copy()
    for car_id, polygon in interiors_m.items():
        mask = zone_mask(polygon, (grid.shape[0], grid.shape[1]), cell_m)
        inside_s[car_id] = float(grid[mask].sum())
        floor[mask] = 0.0
    occupied = floor[floor > 0]
    busiest = float(occupied.max()) if occupied.size else 0.0
    top = float(np.percentile(occupied, percentile)) if occupied.size else 0.0
    return FloorHeat(floor, inside_s, top, busiest)


def zone_seconds(
    person_seconds: npt.NDArray[np.floating],
    cell_m: float,
    zones_m: dict[str, Sequence[tuple[float, float]]],
    inside_m: dict[str, Sequence[tuple[float, float]]] | None = None,
) -> dict[str, float]:
    """Person-seconds in each zone (by id), leaving out the cells of the zone's own interior in
    `inside_m` (a car's browse zone without the car: people around it, not in it)."""
    grid = np.nan_to_num(np.asarray(person_seconds, dtype=np.float64), nan=0.0)
    shape = (grid.shape[0], grid.shape[1])
    out: dict[str, float] = {}
    for zone_id, polygon in zones_m.items():
        mask = zone_mask(polygon, shape, cell_m)
        if inside_m and zone_id in inside_m:
            mask &= ~zone_mask(inside_m[zone_id], shape, cell_m)
        out[zone_id] = float(grid[mask].sum())
    return out
