"""Per-zone heat: person-seconds in each floor zone (a car's browse zone, inside a car, reception,
negotiation, entrance...) over a period, ranked, beside the period before.

Pure: heat grids and zone polygons in, figures out. A cell belongs to a zone when its centre lies inside
the zone's polygon (floor metres, the heat grid's frame: x from the plan's left edge, y from its top edge).
A car's browse zone is counted without its interior: time inside cars (people sitting in them) is its own
zone kind, so a few seated visitors cannot outweigh the floor around every car.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import Polygon

ZoneKind = Literal["car_browse", "car_interior", "reception", "negotiation", "entrance", "staff", "other"]


@dataclass(frozen=True)
class FloorZone:
    zone_id: str
    kind: ZoneKind
    label: str
    polygon_m: tuple[tuple[float, float], ...]
    exclude_m: tuple[tuple[float, float], ...] = ()
    """A polygon cut out of this one (a car's interior out of its browse zone)."""

    def __post_init__(self) -> None:
        if len(self.polygon_m) < 3:
            raise ValueError(
                f"zone {self.zone_id!r}: a polygon needs 3 or more points, got {len(self.polygon_m)}"
            )


@dataclass(frozen=True)
class ZoneFigure:
    zone: FloorZone
    rank: int
    """1 = most person-seconds in the period."""
    area_m2: float
    """The area its cells cover (whole cells whose centre is inside)."""
    person_s: float
    person_s_per_m2: float | None
    share: float | None
    """Of every person-second on the grid in the period."""
    previous_person_s: float | None
    """The period before (None when it has no heat at all)."""
    previous_rank: int | None
    change: float | None
    """`(now - before) / before`; None without a base."""


def zone_masks(
    shape: tuple[int, int], cell_m: float, zones: Sequence[FloorZone]
) -> dict[str, npt.NDArray[np.bool_]]:
    """For each zone, which cells of a (ny, nx) grid it holds (cell centre inside, exclusion outside)."""
    ny, nx = shape
    xs = (np.arange(nx) + 0.5) * cell_m
    ys = (np.arange(ny) + 0.5) * cell_m
    gx, gy = np.meshgrid(xs, ys)
    out = {}
    for z in zones:
        mask = shapely.contains_xy(Polygon(z.polygon_m), gx, gy)
        if z.exclude_m:
            mask &= ~shapely.contains_xy(Polygon(z.exclude_m), gx, gy)
        out[z.zone_id] = np.asarray(mask, dtype=np.bool_)
    return out


def _sums(
    grid: npt.NDArray[np.float32], cell_m: float, zones: Sequence[FloorZone]
) -> tuple[dict[str, float], dict[str, float]]:
    masks = zone_masks(grid.shape[:2], cell_m, zones) if grid.size else {}
    person_s = {z.zone_id: float(grid[masks[z.zone_id]].sum()) if grid.size else 0.0 for z in zones}
    area = {z.zone_id: float(masks[z.zone_id].sum()) * cell_m * cell_m if grid.size else 0.0 for z in zones}
    return person_s, area


def _ranks(values: dict[str, float]) -> dict[str, int]:
    order = sorted(values, key=lambda k: (-values[k], k))
    return {k: i + 1 for i, k in enumerate(order)}


def compare_zones(
    now: npt.NDArray[np.float32],
    before: npt.NDArray[np.float32],
    cell_m: float,
    zones: Sequence[FloorZone],
    before_cell_m: float | None = None,
) -> list[ZoneFigure]:
    """Each zone's person-seconds in the grid `now` and the grid `before` (cells of `before_cell_m`,
    default `cell_m`), most first."""
    ids = [z.zone_id for z in zones]
    if len(set(ids)) != len(ids):
        raise ValueError(f"zone ids must be unique, got {ids}")
    person_s, area = _sums(now, cell_m, zones)
    total = float(now.sum())
    has_before = before.size > 0 and float(before.sum()) > 0
    prev, _ = _sums(before, before_cell_m or cell_m, zones) if has_before else ({}, {})
    ranks, prev_ranks = _ranks(person_s), _ranks(prev) if has_before else {}
    out = []
    for z in zones:
        p, b = person_s[z.zone_id], prev.get(z.zone_id)
        out.append(
            ZoneFigure(
                z,
                ranks[z.zone_id],
                area[z.zone_id],
                p,
                p / area[z.zone_id] if area[z.zone_id] else None,
                p / total if total else None,
                b,
                prev_ranks.get(z.zone_id),
                (p - b) / b if b else None,
            )
        )
    return sorted(out, key=lambda f: f.rank)


def sparse_zone_sums(
    cells: Sequence[tuple[int, int, float]], cell_m: float, zones: Sequence[FloorZone]
) -> dict[str, float]:
    """Each zone's sum of sparse cells `(ix, iy, value)` of edge `cell_m` (cell centre inside the zone,
    outside its exclusion): one node's minute of heat without building the floor's grid."""
    if not cells:
        return {z.zone_id: 0.0 for z in zones}
    arr = np.asarray(cells, dtype=np.float64)
    xs, ys, values = (arr[:, 0] + 0.5) * cell_m, (arr[:, 1] + 0.5) * cell_m, arr[:, 2]
    out = {}
    for z in zones:
        mask = shapely.contains_xy(Polygon(z.polygon_m), xs, ys)
        if z.exclude_m:
            mask &= ~shapely.contains_xy(Polygon(z.exclude_m), xs, ys)
        out[z.zone_id] = float(values[mask].sum())
    return out
