"""The simulated showroom floor, built from a node configuration: doors, display cars, staff areas, paths.

Everything is in floor-plan metres, as in the configuration. People walk around display cars and staff
areas (the obstacles); `World.route` finds a short obstacle-free path on a visibility graph of the
obstacles' corners.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import Point, Polygon
from shapely.prepared import PreparedGeometry, prep

from edge.config import NodeConfig

Vec = npt.NDArray[np.floating[Any]]
"""Float arrays of floor metres (points (2,), or (N, 2))."""

OBSTACLE_CLEARANCE_M = 0.35
"""How far people keep from a car's body or a staff area when walking past."""
_NODE_CLEARANCE_M = 0.5
OUTSIDE_DOOR_M = 1.5
"""Where visitors appear and disappear: this far outside the door line (on the street side)."""
INSIDE_DOOR_M = 2.0


class WorldError(ValueError):
    """A configuration the simulator cannot build a showroom from; the message says what is missing."""


@dataclass(frozen=True)
class SimDoor:
    """A customer door: its line, the unit normal pointing into the shop and the unit vector along it."""

    id: str
    a_m: Vec
    b_m: Vec
    inward: Vec
    along: Vec
    hysteresis_m: float

    @property
    def mid_m(self) -> Vec:
        return (self.a_m + self.b_m) / 2

    @property
    def width_m(self) -> float:
        return float(np.linalg.norm(self.b_m - self.a_m))

    def outside_point(self, offset_m: float = 0.0) -> Vec:
        """A point on the street side, `offset_m` along the door from its middle."""
        return np.asarray(self.mid_m + self.along * offset_m - self.inward * OUTSIDE_DOOR_M)

    def inside_point(self, offset_m: float = 0.0) -> Vec:
        """A point on the shop floor just past the door, `offset_m` along the door from its middle."""
        return np.asarray(self.mid_m + self.along * offset_m + self.inward * INSIDE_DOOR_M)

    def side_m(self, xy_m: Vec) -> Vec:
        """Signed distance of points (N, 2) from the door's infinite line: positive on the shop side."""
        return np.asarray((xy_m - self.a_m) @ self.inward, dtype=np.float64)

    def along_m(self, xy_m: Vec) -> Vec:
        """Position of points (N, 2) along the line from end `a` (0) towards end `b` (`width_m`)."""
        return np.asarray((xy_m - self.a_m) @ self.along, dtype=np.float64)


@dataclass(frozen=True)
class SimCar:
    """A display car: browse zone, interior (its footprint) and door areas, as shapely polygons."""

    id: str
    browse: Polygon
    interior: Polygon
    door_areas: tuple[Polygon, ...]

    def seat_for(self, door_index: int) -> Vec:
        """Where a person sits after getting in through door area `door_index`: inside, near that door."""
        door_c = self.door_areas[door_index].centroid
        centre = self.interior.centroid
        edge = self.interior.exterior.interpolate(self.interior.exterior.project(door_c))
        to_centre = np.array([centre.x - edge.x, centre.y - edge.y])
        dist = float(np.linalg.norm(to_centre))
        step = min(0.6, dist / 2) if dist > 0 else 0.0
        return np.array([edge.x, edge.y]) + (to_centre / dist if dist > 0 else 0.0) * step

    def door_point(self, door_index: int) -> Vec:
        """The middle of door area `door_index`, outside the interior: where a person stands to get in."""
        area = self.door_areas[door_index]
        outside = area.difference(self.interior)
        c = (outside if not outside.is_empty else area).representative_point()
        return np.array([c.x, c.y])


class World:
    """The static floor: geometry from the configuration, plus the path planner.

    Args:
        config: the node configuration whose floor, doors, cars and staff areas are simulated.
    """

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.floor = config.floor.polygon()
        self.doors = tuple(_door(d.id, d.line_m, d.inside_point_m, d.hysteresis_m) for d in config.doors)
        self.cars = tuple(
            SimCar(
                id=c.id,
                browse=Polygon(c.browse_zone_m),
                interior=Polygon(c.interior_zone_m),
                door_areas=tuple(Polygon(a) for a in c.door_areas_m),
            )
            for c in config.cars
        )
        self.staff_areas = tuple(Polygon(a.polygon_m) for a in config.staff_areas)
        self.staff_area_ids = tuple(a.id for a in config.staff_areas)
        obstacles = [c.interior.buffer(OBSTACLE_CLEARANCE_M, join_style="mitre") for c in self.cars]
        obstacles += [a.buffer(OBSTACLE_CLEARANCE_M, join_style="mitre") for a in self.staff_areas]
        self.obstacles = tuple(obstacles)
        self._obstacle_array = np.array(obstacles, dtype=object)
        self._prepared: tuple[PreparedGeometry, ...] = tuple(prep(o) for o in obstacles)
        self._walkable = prep(self.floor.buffer(-0.3))
        self._nodes = self._corner_nodes()
        self._node_edges = self._node_visibility()
        self._rings: dict[str, Polygon] = {}
        self._node_dist, self._next_hop = self._all_pairs()

    # -- places --------------------------------------------------------------------------------------

    def is_open(self, xy_m: Vec, margin_m: float = 0.0) -> bool:
        """True where a visitor can stand: on the floor, outside every obstacle (grown by `margin_m`)."""
        p = Point(float(xy_m[0]), float(xy_m[1]))
        if not self._walkable.contains(p):
            return False
        return all(
            o.distance(p) > margin_m and not po.contains(p)
            for o, po in zip(self.obstacles, self._prepared, strict=True)
        )

    def random_spot(
        self, rng: np.random.Generator, region: Polygon | None = None, margin_m: float = 0.3
    ) -> Vec:
        """A random standing spot inside `region` (default: the whole floor) away from obstacles."""
        area = region if region is not None else self.floor
        x0, y0, x1, y1 = area.bounds
        prepared = prep(area)
        for _ in range(200):
            xy = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
            if prepared.contains(Point(xy)) and self.is_open(xy, margin_m):
                return xy
        raise WorldError(f"no free standing spot found in region with bounds {area.bounds}")

    def browse_spot(self, car: SimCar, rng: np.random.Generator) -> Vec:
        """Where a visitor stands to look at `car`: inside its browse zone, near the car, not in it."""
        ring = self._rings.get(car.id)
        if ring is None:
            ring = car.browse.intersection(car.interior.buffer(2.2)).difference(car.interior.buffer(0.7))
            ring = ring if ring.area > 0.5 else car.browse
            self._rings[car.id] = ring
        return self.random_spot(rng, ring, margin_m=0.15)

    def staff_post(self, index: int, rng: np.random.Generator) -> Vec:
        """A staff member's resting place: inside a staff area (so the node marks them), else near a wall."""
        if self.staff_areas:
            area = self.staff_areas[index % len(self.staff_areas)]
            inner = area.buffer(-0.3)
            region = inner if inner.area > 0.2 else area
            x0, y0, x1, y1 = region.bounds
            prepared = prep(region)
            for _ in range(200):
                xy = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
                if prepared.contains(Point(xy)):
                    return xy
        w = self.config.floor.size_m[0]
        return np.array([1.0 + (index * 2.5) % max(w - 2, 1.0), 1.0])

    def nearest_free(self, xy_m: Vec) -> Vec:
        """`xy_m` if it is outside every obstacle, else the closest point just outside them."""
        p = Point(float(xy_m[0]), float(xy_m[1]))
        for o, po in zip(self.obstacles, self._prepared, strict=True):
            if po.contains(p):
                edge = o.exterior.interpolate(o.exterior.project(p))
                out = np.array([edge.x, edge.y]) - np.array([o.centroid.x, o.centroid.y])
                out = out / max(float(np.linalg.norm(out)), 1e-9)
                return np.asarray(np.array([edge.x, edge.y]) + out * 0.05)
        return xy_m

    # -- paths ---------------------------------------------------------------------------------------

    def route(self, a_m: Vec, b_m: Vec) -> list[Vec]:
        """Waypoints from `a_m` to `b_m` (excluded, included) around obstacles, shortest on the graph.

        Obstacles containing either end are ignored (a person getting into a car walks into it).
        """
        inside = shapely.contains_xy(self._obstacle_array, a_m[0], a_m[1])
        inside |= shapely.contains_xy(self._obstacle_array, b_m[0], b_m[1])
        ignore = {int(i) for i in np.flatnonzero(inside)}
        if self._clear(np.array([a_m]), np.array([b_m]), ignore)[0]:
            return [np.asarray(b_m, dtype=np.float64)]
        nodes = self._nodes
        n = len(nodes)
        if n == 0:
            return [np.asarray(b_m, dtype=np.float64)]
        from_a = self._clear(np.repeat([a_m], n, axis=0), nodes, ignore)
        to_b = self._clear(nodes, np.repeat([b_m], n, axis=0), ignore)
        da = np.where(from_a, np.linalg.norm(nodes - a_m, axis=1), np.inf)
        db = np.where(to_b, np.linalg.norm(nodes - b_m, axis=1), np.inf)
        total = da[:, None] + self._node_dist + db[None, :]
        i, j = np.unravel_index(int(np.argmin(total)), total.shape)
        if not np.isfinite(total[i, j]):
            return [np.asarray(b_m, dtype=np.float64)]  # boxed in: walk straight rather than stand still
        path = [int(i)]
        while path[-1] != j:
            path.append(int(self._next_hop[path[-1], j]))
        return [nodes[k].astype(np.float64) for k in path] + [np.asarray(b_m, dtype=np.float64)]

    def _clear(self, starts: Vec, ends: Vec, ignore: set[int] = frozenset()) -> npt.NDArray[np.bool_]:  # type: ignore[assignment]
        lines = shapely.linestrings(np.stack([starts, ends], axis=1))
        keep = [i for i in range(len(self.obstacles)) if i not in ignore]
        if not keep:
            return np.ones(len(starts), dtype=bool)
        hits = shapely.intersects(lines[:, None], self._obstacle_array[keep][None, :])
        return np.asarray(~hits.any(axis=1), dtype=bool)

    def _corner_nodes(self) -> Vec:
        corners: list[tuple[float, float]] = []
        for interior in [c.interior for c in self.cars] + list(self.staff_areas):
            grown = interior.buffer(OBSTACLE_CLEARANCE_M + _NODE_CLEARANCE_M, join_style="mitre")
            corners += [(float(x), float(y)) for x, y in list(grown.exterior.coords)[:-1]]
        kept = [
            c
            for c in corners
            if self._walkable.contains(Point(c)) and not any(po.contains(Point(c)) for po in self._prepared)
        ]
        return np.array(kept, dtype=np.float64).reshape(-1, 2)

    def _all_pairs(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Shortest corner-to-corner distances and next hops (Floyd-Warshall; a few dozen corners)."""
        n = len(self._nodes)
        dist = np.full((n, n), np.inf)
        np.fill_diagonal(dist, 0.0)
        nxt = np.tile(np.arange(n), (n, 1))
        for a, near in enumerate(self._node_edges):
            for b in near:
                dist[a, b] = float(np.linalg.norm(self._nodes[a] - self._nodes[b]))
        for k in range(n):
            via = dist[:, k, None] + dist[None, k, :]
            better = via < dist
            dist = np.where(better, via, dist)
            nxt = np.where(better, np.repeat(nxt[:, k, None], n, axis=1), nxt)
        return dist, nxt

    def _node_visibility(self) -> list[list[int]]:
        n = len(self._nodes)
        edges: list[list[int]] = [[] for _ in range(n)]
        if n < 2:
            return edges
        i, j = np.triu_indices(n, k=1)
        visible = self._clear(self._nodes[i], self._nodes[j])
        for a, b in zip(i[visible], j[visible], strict=True):
            edges[int(a)].append(int(b))
            edges[int(b)].append(int(a))
        return edges


def _door(
    door_id: str,
    line_m: tuple[tuple[float, float], tuple[float, float]],
    inside: tuple[float, float],
    hyst: float,
) -> SimDoor:
    a, b = np.array(line_m[0], dtype=np.float64), np.array(line_m[1], dtype=np.float64)
    along = (b - a) / np.linalg.norm(b - a)
    normal = np.array([-along[1], along[0]])
    if float((np.array(inside) - a) @ normal) < 0:
        normal = -normal
    return SimDoor(id=door_id, a_m=a, b_m=b, inward=normal, along=along, hysteresis_m=hyst)


__all__ = [
    "OBSTACLE_CLEARANCE_M",
    "SimCar",
    "SimDoor",
    "Vec",
    "World",
    "WorldError",
]
