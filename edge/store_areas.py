"""A store served by several edge boxes: which part of the floor each box owns, and where they meet.

Each box owns one area of the floor plan; the areas tile the floor without overlapping, and neighbours share
a boundary. Each box's cameras see `overlap_m` past its boundaries (the strip both boxes see), where a
visitor walking from one area into the next is handed over (`edge.analytics.handover`).

`tiling_problems` says, with key paths, how drawn areas fail to tile the floor; `BoxLayout` answers the
questions the hand-over asks at run time (whose area is this point in, how far past our boundary is it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shapely.geometry import Point, Polygon, box
from shapely.geometry.base import BaseGeometry

from vision_models.arrays import XY

MIN_AREA_M2 = 0.01
"""Slivers smaller than this (drawing precision) are neither gaps nor overlaps."""


def _where(geometry: BaseGeometry) -> str:
    x0, y0, x1, y1 = geometry.bounds
    return f"x {x0:.2f}..{x1:.2f}, y {y0:.2f}..{y1:.2f} m"


def _parts(geometry: BaseGeometry) -> list[BaseGeometry]:
    parts = getattr(geometry, "geoms", None)
    pieces = list(parts) if parts is not None else [geometry]
    return [p for p in pieces if p.area >= MIN_AREA_M2]


def tiling_problems(
    size_m: tuple[float, float], areas: Sequence[tuple[str, Sequence[XY]]], path: str = "floor.areas"
) -> list[tuple[str, str]]:
    """How the areas `[(node_id, polygon_m), ...]` fail to tile the floor `size_m`: (key path, message) for
    each area outside the floor, each pair that overlaps, each gap no area covers, each area that touches no
    other one. Empty when they tile it."""
    problems: list[tuple[str, str]] = []
    if not areas:
        return problems
    floor = box(0, 0, size_m[0], size_m[1])
    polys = [Polygon(points) for _, points in areas]
    ids = [node_id for node_id, _ in areas]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        problems.append((path, f"node(s) {', '.join(dupes)} have more than one area"))
    for i, (node_id, poly) in enumerate(zip(ids, polys, strict=True)):
        for part in _parts(poly.difference(floor)):
            problems.append(
                (
                    f"{path}[{i}].polygon_m",
                    f"area of {node_id!r} reaches outside the floor plan at {_where(part)}",
                )
            )
    for i in range(len(polys)):
        for j in range(i + 1, len(polys)):
            for part in _parts(polys[i].intersection(polys[j])):
                problems.append(
                    (
                        f"{path}[{j}].polygon_m",
                        f"areas of {ids[i]!r} and {ids[j]!r} overlap by {part.area:.2f} m² at {_where(part)} "
                        "(areas must not overlap: the overlap strip is floor.overlap_m)",
                    )
                )
    covered = polys[0]
    for poly in polys[1:]:
        covered = covered.union(poly)
    for part in _parts(floor.difference(covered)):
        problems.append((path, f"no area covers {part.area:.2f} m² of the floor at {_where(part)}"))
    if len(polys) > 1:
        for i, poly in enumerate(polys):
            if not any(_shares_boundary(poly, other) for j, other in enumerate(polys) if j != i):
                problems.append(
                    (
                        f"{path}[{i}].polygon_m",
                        f"area of {ids[i]!r} shares no boundary with another area: nobody can hand a "
                        "visitor over to it",
                    )
                )
    return problems


def _shares_boundary(a: Polygon, b: Polygon) -> bool:
    return bool(a.buffer(0.01).intersection(b.buffer(0.01)).area > 0.01 * 0.01 * 4)


def crossing_problems(
    areas: Sequence[tuple[str, Sequence[XY]]], zones: Sequence[tuple[str, str, Sequence[XY]]]
) -> list[tuple[str, str]]:
    """Zones `[(key path, name, polygon_m)]` (car browse zones) that straddle a boundary: a zone belongs to
    one box, so the boundary must be drawn around it."""
    problems: list[tuple[str, str]] = []
    polys = [(node_id, Polygon(points)) for node_id, points in areas]
    for zone_path, name, points in zones:
        zone = Polygon(points)
        owners = [node_id for node_id, poly in polys if poly.intersection(zone).area >= MIN_AREA_M2]
        if len(owners) > 1:
            problems.append(
                (
                    zone_path,
                    f"{name} crosses the boundary between {' and '.join(owners)}: draw the boundary around "
                    "it, so that one box counts it",
                )
            )
    return problems


def propose_areas(
    size_m: tuple[float, float],
    zones: Sequence[Sequence[XY]],
    boxes: int,
    node_ids: Sequence[str] = (),
    aims: Sequence[float] = (),
    snap_m: float | None = None,
) -> list[tuple[str, list[XY]]]:
    """Split the floor `size_m` into `boxes` areas side by side along its longer side, each boundary in a
    gap between the zones (car browse zones) nearest to where it aims, so that no zone is cut; a boundary
    goes through a zone only where no gap is near. Returns `[(node_id, polygon_m), ...]` (ids default to
    node-a, node-b, ...).

    `aims`: where along the longer side each of the `boxes - 1` boundaries should go (e.g. between groups
    of cameras, one group per box); default: an even split. `snap_m`: how far a boundary may move from
    its aim to a gap (default: half an area's length)."""
    if boxes < 1:
        raise ValueError(f"boxes must be at least 1, got {boxes}")
    ids = list(node_ids) or [f"node-{chr(ord('a') + i)}" for i in range(boxes)]
    if len(ids) != boxes:
        raise ValueError(f"{boxes} boxes need {boxes} node ids, got {len(ids)}")
    width, depth = size_m
    along_x = width >= depth
    length = width if along_x else depth
    spans = sorted(
        (min(p[0 if along_x else 1] for p in zone), max(p[0 if along_x else 1] for p in zone))
        for zone in zones
    )
    gaps: list[float] = []  # the middle of each stretch no zone covers
    reach = 0.0
    for lo, hi in spans:
        if lo > reach:
            gaps.append((reach + lo) / 2)
        reach = max(reach, hi)
    if reach < length:
        gaps.append((reach + length) / 2)
    cuts: list[float] = []
    if aims and len(aims) != boxes - 1:
        raise ValueError(f"{boxes} boxes need {boxes - 1} boundary aims, got {len(aims)}")
    for i in range(1, boxes):
        even = aims[i - 1] if aims else length * i / boxes
        free = [g for g in gaps if g not in cuts and (not cuts or g > cuts[-1]) and 0 < g < length]
        best = min(free, key=lambda g: abs(g - even)) if free else even
        reach_m = length / boxes / 2 if snap_m is None else snap_m
        cuts.append(round(best if abs(best - even) <= reach_m else even, 3))
    edges = [0.0, *cuts, length]
    areas: list[tuple[str, list[XY]]] = []
    for node_id, lo, hi in zip(ids, edges[:-1], edges[1:], strict=True):
        if along_x:
            areas.append((node_id, [(lo, 0.0), (hi, 0.0), (hi, depth), (lo, depth)]))
        else:
            areas.append((node_id, [(0.0, lo), (width, lo), (width, hi), (0.0, hi)]))
    return areas


@dataclass(frozen=True)
class BoxLayout:
    """This box's area and its neighbours' (the boxes whose areas share a boundary with it).

    Attributes:
        node_id: this box.
        area: this box's area.
        neighbours: each neighbour's area, by node id.
        overlap_m: how far past the boundary this box's cameras see.
    """

    node_id: str
    area: Polygon
    neighbours: dict[str, Polygon]
    overlap_m: float

    @classmethod
    def of(cls, node_id: str, areas: Sequence[tuple[str, Sequence[XY]]], overlap_m: float) -> BoxLayout:
        by_id = {n: Polygon(points) for n, points in areas}
        if node_id not in by_id:
            raise ValueError(f"node {node_id!r} has no area (areas: {', '.join(sorted(by_id))})")
        own = by_id[node_id]
        neighbours = {n: p for n, p in sorted(by_id.items()) if n != node_id and _shares_boundary(own, p)}
        return cls(node_id, own, neighbours, overlap_m)

    @property
    def hysteresis_m(self) -> float:
        """How far past a boundary a person must be before they count as on the other side (half the
        overlap strip, so that someone standing near the line is not handed back and forth)."""
        return self.overlap_m / 2

    def beyond_m(self, xy_m: XY) -> float:
        """How far `xy_m` lies outside this box's area (0 inside), metres."""
        return float(self.area.distance(Point(xy_m)))

    def inside_by_m(self, xy_m: XY) -> float:
        """How far `xy_m` lies inside this box's area from its boundary (0 outside), metres."""
        point = Point(xy_m)
        if not self.area.contains(point):
            return 0.0
        return float(self.area.exterior.distance(point))

    def owns(self, xy_m: XY) -> bool:
        """Inside this box's area or within the hysteresis past it (still this box's person)."""
        return self.beyond_m(xy_m) <= self.hysteresis_m

    def neighbour_at(self, xy_m: XY) -> str | None:
        """The neighbour whose area holds `xy_m` (the nearest one within the overlap strip); None if none."""
        point = Point(xy_m)
        best: tuple[float, str] | None = None
        for node_id, poly in self.neighbours.items():
            d = float(poly.distance(point))
            if d <= self.overlap_m and (best is None or d < best[0]):
                best = (d, node_id)
        return None if best is None else best[1]

    def holds_line(self, line_m: Sequence[XY]) -> bool:
        """True when the middle of the line (a door line) lies in this box's area: this box counts it. A
        middle on the boundary itself goes to the first box by node id."""
        (x0, y0), (x1, y1) = line_m[0], line_m[-1]
        middle = Point((x0 + x1) / 2, (y0 + y1) / 2)
        if self.area.distance(middle) > 1e-3:
            return False
        sharing = [n for n, poly in self.neighbours.items() if poly.distance(middle) <= 1e-3]
        return all(self.node_id < n for n in sharing)

    def seen_area(self) -> BaseGeometry:
        """The floor this box's cameras must see: its area and the overlap strip past its boundaries."""
        return self.area.buffer(self.overlap_m, join_style="mitre")


__all__ = ["MIN_AREA_M2", "BoxLayout", "crossing_problems", "propose_areas", "tiling_problems"]
