"""`showroom hardware plan`: where to hang ceiling cameras so that every person on the floor is seen.

The floor comes from a node config (floor size, doors, cars, staff areas) or a floor-only YAML with the same
keys plus optional `obstacles` (walls, pillars) and `floor.outline_m` (walls that are not the full rectangle).

What "seen" means (the coverage rule):
- A person counts as seen at a floor point where the camera sees the whole standing person: the point must
  lie in the camera's footprint on the floor (feet) and on the head plane, 1.7 m up. For a camera looking
  down the head-plane footprint is the smaller one (it shrinks with `ceiling - 1.7`, not `ceiling`), so it
  is what bounds coverage; a floor footprint would promise coverage where only feet are in the picture.
- Walls and pillars (`obstacles`) hide whatever is behind them, head or feet.
- A display car of roof height h hides the floor behind it over `h * d / (H - h)` (d: horizontal distance
  from the camera to the car's edge, H: camera height). Feet must be visible where they matter: in every door
  band (1 m either side of a door line: the door counter needs where people stand) and every car door area
  (a visitor vanishing into a car there is a car entry). Elsewhere, browse zones included, the node stands a
  person cut off by a car roof a full height below the head (`edge.floor.feet`), so the head suffices.
- Neighbouring cameras overlap by at least 1 m (`HANDOVER_M` either side of a camera's border), where the
  tracker hands people over: the plan counts a point as covered by a camera only when it lies 0.5 m inside
  that camera's footprint, except along walls, where there is nobody to hand over to.

Placement is a deterministic greedy set cover on a grid of floor cells (`cell_m`, default 0.25 m) over
candidate positions every `grid_m` (default 1 m) and the headings the camera profile allows; cells in door
bands and car door areas weigh four times as much. A camera is added while it covers at least
`MIN_GAIN_M2` (0.5 m², weighted) of what is still uncovered, then cameras that others make redundant are
dropped and pairs of cameras that one better-placed camera can replace are merged (13% fewer cameras on the
example showroom with fisheyes at 4.5 m).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Self

import click
import cv2
import numpy as np
import numpy.typing as npt
import shapely
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from shapely.geometry import LineString, Point, Polygon, box
from shapely.ops import unary_union

from edge.config import (
    CarConfig,
    ConfigError,
    DoorConfig,
    Identifier,
    PolygonM,
    StaffArea,
    parse_config,
    polygon_of,
    problems_of,
)
from edge.store_areas import propose_areas
from edge.strict_yaml import YamlFileError, load_yaml_file
from hardware.profiles import PERSON_HEIGHT_M, CameraProfile, ProfileError, load_camera
from vision_models.boxes import BoxProfile, BoxProfileError, load_box

HANDOVER_M = 0.5
"""A point counts as covered by a camera only this far inside its footprint: neighbours overlap by 2x."""

DOOR_BAND_M = 1.0
"""Each side of a door line that must be covered, feet included (the door counter's hysteresis is 0.4 m)."""

CRITICAL_WEIGHT = 4.0
"""Weight of a cell in a door band or car door area in the set cover."""

MIN_GAIN_M2 = 0.5
"""A camera is added only if it covers at least this much (weighted) of the floor still uncovered."""

DEFAULT_BOX = "intel-n100-4c"
DEFAULT_FPS = 5.0

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


class PlanError(ValueError):
    """An input the planner cannot use; the message names file, key and reason, one line per problem."""


# ---------------------------------------------------------------------------------------------------
# The floor
# ---------------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlanFloorArea(_Model):
    size_m: tuple[
        Annotated[float, Field(gt=0, le=1000)],
        Annotated[float, Field(gt=0, le=1000)],
    ] = Field(description="Floor plan width and depth in metres.")
    outline_m: PolygonM | None = Field(
        None, description="The walls, where the floor is not the whole size_m rectangle: a closed polygon."
    )

    @field_validator("outline_m")
    @classmethod
    def _closed(cls, v: list[tuple[float, float]] | None) -> list[tuple[float, float]] | None:
        if v is not None:
            polygon_of(v, "outline")
        return v


class Obstacle(_Model):
    id: Identifier
    polygon_m: PolygonM = Field(description="Footprint of a wall, pillar or fixture, metres.")
    height_m: float | None = Field(None, gt=0, le=30, description="Height; absent: floor to ceiling.")

    @field_validator("polygon_m")
    @classmethod
    def _simple(cls, v: list[tuple[float, float]]) -> list[tuple[float, float]]:
        polygon_of(v, "obstacle")
        return v


class FloorPlanFile(_Model):
    """A floor without a node: what the planner needs of a showroom, plus walls and pillars."""

    floor: PlanFloorArea
    doors: list[DoorConfig] = Field(min_length=1)
    cars: list[CarConfig] = Field(default_factory=list)
    staff_areas: list[StaffArea] = Field(default_factory=list)
    obstacles: list[Obstacle] = Field(default_factory=list)

    @model_validator(mode="after")
    def _inside(self) -> Self:
        if self.floor.outline_m is not None:
            rect = box(0, 0, *self.floor.size_m).buffer(1e-6)
            if not rect.contains(Polygon(self.floor.outline_m)):
                raise ValueError(f"floor.outline_m reaches outside size_m {list(self.floor.size_m)}")
        return self


@dataclass(frozen=True)
class Floor:
    """The floor as the planner sees it, shapely geometry in plan metres."""

    source: str
    outline: Polygon
    doors: list[tuple[str, LineString]]
    cars: list[CarConfig]
    staff_areas: list[tuple[str, Polygon]]
    obstacles: list[tuple[str, Polygon, float | None]]


def _problem_lines(source: str, problems: list[tuple[str, str]]) -> str:
    return "\n".join(f"{source}: {path}: {message}" for path, message in problems)


def load_floor(path: Path) -> Floor:
    """A node config or a floor-only YAML as a `Floor`; `PlanError` names file, key and reason."""
    source = str(path)
    try:
        data = load_yaml_file(path)  # strict: a key given twice, non-UTF-8 or an oversized file is named
    except YamlFileError as exc:
        raise PlanError(f"{source}: {exc}") from exc
    if not isinstance(data, dict):
        raise PlanError(f"{source}: (top level): expected a mapping, got {type(data).__name__}")
    if "node_id" in data or "cameras" in data:  # a node config: validated as the node would
        try:
            node = parse_config(data, source)
        except ConfigError as exc:
            raise PlanError(_problem_lines(source, exc.problems)) from exc
        outline = node.floor.polygon()
        cars, staff = node.cars, node.staff_areas
        doors, obstacles = node.doors, []
    else:
        try:
            plan = FloorPlanFile.model_validate(data)
        except ValidationError as exc:
            raise PlanError(_problem_lines(source, problems_of(exc))) from exc
        w, d = plan.floor.size_m
        outline = box(0, 0, w, d) if plan.floor.outline_m is None else Polygon(plan.floor.outline_m)
        cars, staff, doors = plan.cars, plan.staff_areas, plan.doors
        obstacles = [(o.id, Polygon(o.polygon_m), o.height_m) for o in plan.obstacles]
    return Floor(
        source=source,
        outline=outline,
        doors=[(d.id, LineString(d.line_m)) for d in doors],
        cars=list(cars),
        staff_areas=[(a.id, Polygon(a.polygon_m)) for a in staff],
        obstacles=obstacles,
    )


# ---------------------------------------------------------------------------------------------------
# Cells, items and what each candidate camera sees
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """Something whose coverage is reported: a door band, a browse zone, a car door area, a staff area."""

    kind: str
    id: str
    region: Polygon
    critical: bool


def items_of(floor: Floor) -> list[Item]:
    items: list[Item] = []
    for door_id, line in floor.doors:
        band = line.buffer(DOOR_BAND_M, cap_style="flat").intersection(floor.outline)
        items.append(Item("door", door_id, band, True))
    for car in floor.cars:
        interior = Polygon(car.interior_zone_m)
        # A browse zone needs people's heads: feet a car roof hides are recovered from the head (floor/feet).
        items.append(Item("car_browse_zone", car.id, Polygon(car.browse_zone_m).difference(interior), False))
        for i, area in enumerate(car.door_areas_m):
            items.append(Item("car_door_area", f"{car.id}[{i}]", Polygon(area).difference(interior), True))
    for area_id, polygon in floor.staff_areas:
        items.append(Item("staff_area", area_id, polygon.intersection(floor.outline), False))
    return items


@dataclass
class Grid:
    """Floor cells: centres `xy` (N, 2) metres, on a `shape` (rows, cols) raster with `index` (N, 2)."""

    cell_m: float
    origin: tuple[float, float]
    shape: tuple[int, int]
    xy: FloatArray
    index: npt.NDArray[np.int64]
    floor: BoolArray
    """Open floor: inside the walls, outside obstacles and car interiors."""
    critical: BoolArray
    """Feet must be seen: door bands, car door areas."""
    in_obstacle: BoolArray
    items: dict[str, BoolArray] = field(default_factory=dict)

    @property
    def target(self) -> BoolArray:
        return self.floor | self.critical


def build_grid(floor: Floor, items: list[Item], cell_m: float) -> Grid:
    minx, miny, maxx, maxy = floor.outline.bounds
    cols, rows = math.ceil((maxx - minx) / cell_m), math.ceil((maxy - miny) / cell_m)
    jj, ii = np.meshgrid(np.arange(cols), np.arange(rows))
    xs = minx + (jj.ravel() + 0.5) * cell_m
    ys = miny + (ii.ravel() + 0.5) * cell_m
    inside = shapely.contains_xy(floor.outline, xs, ys)
    xs, ys = xs[inside], ys[inside]
    index = np.column_stack([ii.ravel()[inside], jj.ravel()[inside]]).astype(np.int64)
    in_obstacle = np.zeros(len(xs), dtype=bool)
    for _, polygon, _ in floor.obstacles:
        in_obstacle |= shapely.intersects_xy(polygon, xs, ys)
    in_car = np.zeros(len(xs), dtype=bool)
    for car in floor.cars:
        in_car |= shapely.contains_xy(Polygon(car.interior_zone_m), xs, ys)
    grid = Grid(
        cell_m=cell_m,
        origin=(minx, miny),
        shape=(rows, cols),
        xy=np.column_stack([xs, ys]),
        index=index,
        floor=~in_obstacle & ~in_car,
        critical=np.zeros(len(xs), dtype=bool),
        in_obstacle=in_obstacle,
    )
    for item in items:
        mask = shapely.intersects_xy(item.region, xs, ys) & ~in_car
        grid.items[f"{item.kind}:{item.id}"] = mask
        if item.critical:
            grid.critical |= mask
    return grid


def shadow(
    footprint: Polygon, height_m: float | None, camera_xy: tuple[float, float], mount_m: float, plane_z: float
) -> Polygon | None:
    """Where a prism (`footprint`, `height_m`; None: to the ceiling) hides the plane at `plane_z` from a
    camera at `camera_xy`, `mount_m` up. A roof edge at horizontal distance d projects to d * H' / (H - h)
    on the plane (H' = H - plane_z), i.e. it hides `h' * d / (H - h)` beyond the prism (h' = h - plane_z)."""
    top = mount_m if height_m is None else min(height_m, mount_m)
    if top <= plane_z:
        return None
    scale = 1000.0 if top >= mount_m - 1e-6 else (mount_m - plane_z) / (mount_m - top)
    corners = np.asarray(footprint.exterior.coords)[:-1]
    centre = np.asarray(camera_xy)
    far = centre + (corners - centre) * scale
    parts = [footprint, Polygon(far).buffer(0)]
    n = len(corners)
    for i in range(n):
        j = (i + 1) % n
        parts.append(Polygon([corners[i], corners[j], far[j], far[i]]).buffer(0))
    return unary_union(parts)


@dataclass(frozen=True)
class Candidate:
    xy_m: tuple[float, float]
    heading_deg: float
    footprint: Polygon
    """Where a whole standing person is in view (floor footprint and head-plane footprint together)."""


def _hidden(
    floor: Floor, grid: Grid, sel: npt.NDArray[np.int64], xy_m: tuple[float, float], mount_m: float
) -> BoolArray:
    """For the cells `sel`: hidden from a camera at `xy_m` by obstacles or by a car where it matters."""
    xs, ys = grid.xy[sel, 0], grid.xy[sel, 1]
    hidden = np.zeros(len(sel), dtype=bool)
    everywhere = [(p, h) for _, p, h in floor.obstacles]
    everywhere_head = everywhere + [(Polygon(c.interior_zone_m), c.height_m) for c in floor.cars]
    for plane_z, prisms in ((0.0, everywhere), (PERSON_HEIGHT_M, everywhere_head)):
        for polygon, height in prisms:
            s = shadow(polygon, height, xy_m, mount_m, plane_z)
            if s is not None:
                hidden |= shapely.intersects_xy(s, xs, ys)
    critical = grid.critical[sel]
    if critical.any():
        for car in floor.cars:
            s = shadow(Polygon(car.interior_zone_m), car.height_m, xy_m, mount_m, 0.0)
            if s is not None:
                hidden |= critical & shapely.intersects_xy(s, xs, ys)
    return hidden


def candidates_and_masks(
    floor: Floor, grid: Grid, camera: CameraProfile, mount_m: float, grid_m: float
) -> tuple[list[Candidate], BoolArray, BoolArray]:
    """Every candidate camera, with the cells it sees (`sees`) and those it covers with handover margin."""
    minx, miny, maxx, maxy = floor.outline.bounds
    xs = np.arange(minx + grid_m / 2, maxx, grid_m)
    ys = np.arange(miny + grid_m / 2, maxy, grid_m)
    mountable = floor.outline
    for _, polygon, _ in floor.obstacles:
        mountable = mountable.difference(polygon.buffer(0.2))
    walls = unary_union([floor.outline.exterior] + [p.exterior for _, p, _ in floor.obstacles])
    wall_band = walls.buffer(HANDOVER_M + grid.cell_m)
    target_idx = np.flatnonzero(grid.target)
    candidates: list[Candidate] = []
    sees_rows: list[BoolArray] = []
    plans_rows: list[BoolArray] = []
    for y in ys:
        for x in xs:
            if not mountable.contains(shapely.Point(x, y)):
                continue
            xy = (float(x), float(y))
            hidden_cache: dict[bytes, BoolArray] = {}
            for heading in camera.headings_deg:
                person = camera.footprint(xy, mount_m, 0.0, heading).intersection(
                    camera.footprint(xy, mount_m, PERSON_HEIGHT_M, heading)
                )
                if person.is_empty:
                    continue
                bx0, by0, bx1, by1 = person.bounds
                cx, cy = grid.xy[target_idx, 0], grid.xy[target_idx, 1]
                near = target_idx[(cx >= bx0) & (cx <= bx1) & (cy >= by0) & (cy <= by1)]
                in_fp = shapely.intersects_xy(person, grid.xy[near, 0], grid.xy[near, 1])
                sel = near[in_fp]
                key = sel.tobytes()
                if key not in hidden_cache:
                    hidden_cache[key] = _hidden(floor, grid, sel, xy, mount_m)
                visible = sel[~hidden_cache[key]]
                core = person.buffer(-HANDOVER_M).union(person.intersection(wall_band))
                in_core = shapely.intersects_xy(core, grid.xy[visible, 0], grid.xy[visible, 1])
                sees = np.zeros(len(grid.xy), dtype=bool)
                sees[visible] = True
                plans = np.zeros(len(grid.xy), dtype=bool)
                plans[visible[in_core]] = True
                candidates.append(Candidate(xy, heading, person))
                sees_rows.append(sees)
                plans_rows.append(plans)
    if not candidates:
        raise PlanError(f"{floor.source}: floor: no place on the floor to mount a camera")
    return candidates, np.array(sees_rows), np.array(plans_rows)


def greedy_cover(plans: BoolArray, weights: FloatArray, cell_m: float) -> list[int]:
    """Candidates chosen by greedy weighted set cover, then redundant ones dropped (deterministic)."""
    matrix = plans.astype(np.float32)
    uncovered = np.ones(plans.shape[1], dtype=bool)
    min_gain = MIN_GAIN_M2 / (cell_m * cell_m)
    chosen: list[int] = []
    while len(chosen) < 1000:
        gains = matrix @ (weights * uncovered).astype(np.float32)
        best = int(np.argmax(gains))  # the first of equals: deterministic
        if gains[best] < min_gain:
            break
        chosen.append(best)
        uncovered &= ~plans[best]
    # Drop, last first, any camera whose planned cells the others cover as well.
    for c in list(reversed(chosen)):
        others = [o for o in chosen if o != c]
        if not others:
            break
        mine = plans[c] & (weights > 0)
        if not (mine & ~np.any(plans[others], axis=0)).any():
            chosen.remove(c)
    return merge_pairs(plans, weights, chosen)


def merge_pairs(plans: BoolArray, weights: FloatArray, chosen: list[int], max_merges: int = 200) -> list[int]:
    """Two cameras replaced by one wherever a single candidate covers everything only those two cover
    (greedy leaves such pairs behind: it adds cameras for remnants that a better-placed one would take
    together). Pairs are tried in a fixed order, so the result is deterministic."""
    need = weights > 0
    chosen = list(chosen)
    for _ in range(max_merges):
        counts = plans[chosen].sum(axis=0)
        alone = {c: np.flatnonzero(need & plans[c] & (counts == 1)) for c in chosen}
        two = need & (counts == 2)
        rows = plans[chosen].astype(np.float32)
        overlapping = (rows @ rows.T) > 0  # one camera can only take over two whose footprints meet
        merged = None
        for i, a in enumerate(chosen):
            for j in range(i + 1, len(chosen)):
                if not overlapping[i, j]:
                    continue
                b = chosen[j]
                shared = np.flatnonzero(two & plans[a] & plans[b])
                only_theirs = np.concatenate([alone[a], alone[b], shared])
                takes_all = np.flatnonzero(plans[:, only_theirs].all(axis=1))
                if len(takes_all):
                    merged = (a, b, int(takes_all[0]))
                    break
            if merged:
                break
        if merged is None:
            break
        a, b, k = merged
        chosen = [c for c in chosen if c not in (a, b)] + [k]
    return chosen


# ---------------------------------------------------------------------------------------------------
# The plan and its report
# ---------------------------------------------------------------------------------------------------


@dataclass
class Plan:
    floor: Floor
    camera: CameraProfile
    box_profile: BoxProfile
    ceiling_m: float
    fps: float
    grid: Grid
    items: list[Item]
    cameras: list[Candidate]
    covered: BoolArray
    coverable: BoolArray
    runtime_s: float = 0.0

    def report(self) -> dict[str, Any]:
        g, cell_area = self.grid, self.grid.cell_m**2
        floor_cells = g.floor
        coverage = 100.0 * (self.covered & floor_cells).sum() / max(floor_cells.sum(), 1)
        items = []
        for item in self.items:
            mask = g.items[f"{item.kind}:{item.id}"]
            n = int(mask.sum())
            pct = 100.0 * (self.covered & mask).sum() / n if n else 100.0
            items.append(
                {
                    "kind": item.kind,
                    "id": item.id,
                    "area_m2": round(n * cell_area, 2),
                    "coverage_pct": round(float(pct), 1),
                    "feet_required": item.critical,
                }
            )
        provider = self.box_profile.providers[0]
        per_box = self.box_profile.cameras_at(self.fps, provider)
        n_cams = len(self.cameras)
        boxes = math.ceil(n_cams / per_box) if per_box else None
        blind = self.blind_spots()
        return {
            "floor": self.floor.source,
            "ceiling_m": self.ceiling_m,
            "camera_profile": self.camera.id,
            "coverage_rule": (
                "whole standing person in view (floor and 1.7 m head-plane footprints); walls and pillars "
                "hide head or feet; car roofs hide feet in door bands, browse zones and car door areas; "
                f"a point counts for a camera {HANDOVER_M} m inside its footprint (neighbours overlap "
                f">= {2 * HANDOVER_M:g} m)"
            ),
            "floor_area_m2": round(float(floor_cells.sum() * cell_area), 1),
            "covered_area_m2": round(float((self.covered & floor_cells).sum() * cell_area), 1),
            "coverage_pct": round(float(coverage), 1),
            "cameras_needed": n_cams,
            "cameras": [
                {
                    "id": f"cam-{i + 1:02d}",
                    "xy_m": [round(c.xy_m[0], 2), round(c.xy_m[1], 2)],
                    "heading_deg": c.heading_deg,
                    "mount_m": self.ceiling_m,
                    "person_area_m2": round(c.footprint.area, 1),
                }
                for i, c in enumerate(self.cameras)
            ],
            "box_profile": self.box_profile.id,
            "box_provider": provider,
            "fps_per_camera": self.fps,
            "cameras_per_box": per_box,
            "boxes_needed": boxes,
            "items": items,
            "blind_area_m2": round(float(sum(b["area_m2"] for b in blind)), 2),
            "blind_spots": blind,
            "bill_of_materials": self.bill_of_materials(n_cams, boxes),
            "box_areas": self.box_areas(boxes, per_box) if boxes and boxes > 1 else [],
            "runtime_s": round(self.runtime_s, 2),
        }

    def box_areas(self, boxes: int, per_box: int) -> list[dict[str, Any]]:
        """When one box is not enough: the floor split into one area per box (boundaries between the
        display cars, `edge.store_areas.propose_areas`), each with the planned cameras mounted over it,
        ready for `floor.areas` in every box's configuration."""
        _, _, width, depth = self.floor.outline.bounds
        zones = [car.browse_zone_m for car in self.floor.cars]
        # Each boundary aims between two groups of cameras (along the longer side), one group per box.
        along = sorted(c.xy_m[0 if width >= depth else 1] for c in self.cameras)
        aims = []
        for i in range(1, boxes):
            k = min(len(along) - 1, max(1, round(i * len(along) / boxes)))
            aims.append((along[k - 1] + along[k]) / 2)
        # Boundaries in the gaps between cars (a car is counted by one box); a box left with more
        # cameras than it can take is flagged, for the installer to move cameras or add a box.
        out: list[dict[str, Any]] = []
        for node_id, polygon in propose_areas((width, depth), zones, boxes, aims=aims):
            area = Polygon(polygon).buffer(1e-6)
            cams = [f"cam-{i + 1:02d}" for i, c in enumerate(self.cameras) if area.contains(Point(c.xy_m))]
            out.append(
                {
                    "node_id": node_id,
                    "polygon_m": [[round(x, 3), round(y, 3)] for x, y in polygon],
                    "cameras": cams,
                    "over_capacity": len(cams) > per_box,
                }
            )
        return out

    def bill_of_materials(self, n_cams: int, boxes: int | None) -> list[dict[str, Any]]:
        b = self.box_profile
        figures = "measured" if b.measured else "estimate"
        return [
            {
                "item": f"{self.camera.name} ({self.camera.lens})",
                "profile": self.camera.id,
                "quantity": n_cams,
            },
            {
                "item": f"{b.name}: {b.cameras_at(self.fps)} cameras at {self.fps:g} fps each ({figures})",
                "profile": b.id,
                "quantity": boxes,
            },
            {"item": "PoE switch port (802.3af), one per camera", "quantity": n_cams},
            {"item": "Cat 6 cable run, camera to switch", "quantity": n_cams},
        ]

    def blind_spots(self) -> list[dict[str, Any]]:
        """Connected uncovered patches: area, centre, what they touch and why they are blind."""
        g = self.grid
        blind = g.target & ~self.covered
        raster = np.zeros(g.shape, dtype=np.uint8)
        raster[g.index[blind, 0], g.index[blind, 1]] = 1
        n, labels = cv2.connectedComponents(raster, connectivity=8)
        label_of_cell = labels[g.index[:, 0], g.index[:, 1]]
        spots: list[dict[str, Any]] = []
        for label in range(1, n):
            cells = blind & (label_of_cell == label)
            touches = [key for key, mask in g.items.items() if (mask & cells).any()]
            area = float(cells.sum() * g.cell_m**2)
            if area < 0.5 and not touches:
                continue
            xy = g.xy[cells]
            if (g.in_obstacle[cells]).all():
                cause = "inside " + ", ".join(self._obstacles_near(xy))
            elif not (self.coverable[cells]).any():
                near = self._obstacles_near(xy) + self._cars_near(xy)
                cause = "hidden from every mounting point" + (f" (by {', '.join(near)})" if near else "")
            else:
                cause = f"left out: a camera there would cover less than {MIN_GAIN_M2} m2"
            spots.append(
                {
                    "area_m2": round(area, 2),
                    "centre_m": [round(float(xy[:, 0].mean()), 2), round(float(xy[:, 1].mean()), 2)],
                    "bounds_m": [round(float(v), 2) for v in (*xy.min(axis=0), *xy.max(axis=0))],
                    "touches": touches,
                    "cause": cause,
                }
            )
        spots.sort(key=lambda s: (-len(s["touches"]), -s["area_m2"]))
        return spots

    def _obstacles_near(self, xy: FloatArray, within_m: float = 3.0) -> list[str]:
        patch = shapely.MultiPoint(xy)
        return [f"obstacle {oid}" for oid, p, _ in self.floor.obstacles if p.distance(patch) <= within_m]

    def _cars_near(self, xy: FloatArray, within_m: float = 3.0) -> list[str]:
        patch = shapely.MultiPoint(xy)
        return [
            f"car {c.id}" for c in self.floor.cars if Polygon(c.interior_zone_m).distance(patch) <= within_m
        ]


def check_mounting(camera: CameraProfile, ceiling_m: float, camera_arg: str) -> None:
    source = camera_arg if camera_arg.endswith((".yaml", ".yml")) else f"camera profile {camera.id}"
    if ceiling_m < camera.min_mount_m:
        raise PlanError(
            f"{source}: min_mount_m: ceiling {ceiling_m:g} m is below this camera's minimum mounting "
            f"height {camera.min_mount_m:g} m"
        )
    if ceiling_m > camera.max_mount_m:
        raise PlanError(
            f"{source}: max_mount_m: ceiling {ceiling_m:g} m is above this camera's maximum mounting "
            f"height {camera.max_mount_m:g} m"
        )


def make_plan(
    floor: Floor,
    camera: CameraProfile,
    box_profile: BoxProfile,
    ceiling_m: float,
    *,
    fps: float = DEFAULT_FPS,
    cell_m: float = 0.25,
    grid_m: float = 1.0,
) -> Plan:
    """Place cameras over `floor` (see the module's docstring for the rule) and measure the result."""
    started = time.perf_counter()
    items = items_of(floor)
    grid = build_grid(floor, items, cell_m)
    candidates, sees, plans = candidates_and_masks(floor, grid, camera, ceiling_m, grid_m)
    weights = np.where(grid.critical, CRITICAL_WEIGHT, 1.0) * grid.target
    chosen = greedy_cover(plans, weights.astype(np.float64), cell_m)
    covered = np.any(sees[chosen], axis=0) if chosen else np.zeros(len(grid.xy), dtype=bool)
    plan = Plan(
        floor=floor,
        camera=camera,
        box_profile=box_profile,
        ceiling_m=ceiling_m,
        fps=fps,
        grid=grid,
        items=items,
        cameras=[candidates[i] for i in chosen],
        covered=covered,
        coverable=np.any(sees, axis=0),
    )
    plan.runtime_s = time.perf_counter() - started
    return plan


# ---------------------------------------------------------------------------------------------------
# The drawing
# ---------------------------------------------------------------------------------------------------

_BLACK, _GREY, _WHITE = (0, 0, 0), (150, 150, 150), (255, 255, 255)
_DOOR, _CAR, _CAR_ZONE, _CAR_DOOR = (40, 160, 40), (140, 110, 80), (230, 200, 170), (60, 150, 240)
_STAFF, _BLIND, _OBSTACLE = (170, 60, 170), (40, 40, 220), (90, 90, 90)
_CAM_COLOURS = [(200, 120, 0), (0, 140, 200), (160, 0, 160), (0, 150, 90), (30, 80, 200), (120, 120, 0)]


def draw_plan(plan: Plan, out: Path) -> None:
    """The plan as a PNG an installer can read: floor, cars, doors, staff areas, cameras with their
    footprints, blind spots hatched red, a legend and a scale bar."""
    floor = plan.floor
    minx, miny, maxx, maxy = floor.outline.bounds
    width_m, depth_m = maxx - minx, maxy - miny
    scale = float(np.clip(1200.0 / max(width_m, 1e-6), 12.0, 60.0))
    margin, legend_w, title_h = 50, 330, 60
    w_px = int(width_m * scale) + 2 * margin + legend_w
    h_px = max(int(depth_m * scale) + 2 * margin + title_h + 40, 520)
    img = np.full((h_px, w_px, 3), 255, dtype=np.uint8)
    x0, y0 = margin, margin + title_h

    def px(points: Any) -> npt.NDArray[np.int32]:
        arr = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return (
            np.column_stack([x0 + (arr[:, 0] - minx) * scale, y0 + (arr[:, 1] - miny) * scale])
            .round()
            .astype(np.int32)
        )

    def polys(geom: Any) -> list[npt.NDArray[np.int32]]:
        if geom.is_empty:
            return []
        parts = list(geom.geoms) if hasattr(geom, "geoms") else [geom]
        return [px(p.exterior.coords) for p in parts if isinstance(p, Polygon) and not p.is_empty]

    def fill(geom: Any, colour: tuple[int, int, int], alpha: float) -> None:
        layer = img.copy()
        cv2.fillPoly(layer, polys(geom), colour)
        cv2.addWeighted(layer, alpha, img, 1 - alpha, 0, dst=img)

    def hatch(geom: Any, colour: tuple[int, int, int], step: int = 8) -> None:
        mask = np.zeros(img.shape[:2], dtype=np.uint8)
        cv2.fillPoly(mask, polys(geom), 255)
        lines = np.zeros_like(mask)
        for k in range(-h_px, w_px, step):
            cv2.line(lines, (k, 0), (k + h_px, h_px), 255, 1)
        img[(mask > 0) & (lines > 0)] = colour

    # Covered floor, faint; camera footprints.
    fill(floor.outline, (245, 245, 245), 1.0)
    for i, cam in enumerate(plan.cameras):
        colour = _CAM_COLOURS[i % len(_CAM_COLOURS)]
        fill(cam.footprint.intersection(floor.outline), colour, 0.07)
    for i, cam in enumerate(plan.cameras):
        colour = _CAM_COLOURS[i % len(_CAM_COLOURS)]
        cv2.polylines(
            img, polys(cam.footprint.intersection(floor.outline.buffer(0.3))), True, colour, 1, cv2.LINE_AA
        )
    for _, polygon in floor.staff_areas:
        fill(polygon, _STAFF, 0.15)
        cv2.polylines(img, polys(polygon), True, _STAFF, 2, cv2.LINE_AA)
    for car in floor.cars:
        cv2.polylines(img, polys(Polygon(car.browse_zone_m)), True, _CAR_ZONE, 2, cv2.LINE_AA)
        for area in car.door_areas_m:
            fill(Polygon(area), _CAR_DOOR, 0.5)
        interior = Polygon(car.interior_zone_m)
        fill(interior, _CAR, 0.8)
        c = px(interior.centroid.coords)[0]
        cv2.putText(
            img,
            car.id,
            (int(c[0]) - 22, int(c[1]) + 4),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            _WHITE,
            1,
            cv2.LINE_AA,
        )
    for _, polygon, _ in floor.obstacles:
        fill(polygon, _OBSTACLE, 0.9)
    # Blind spots: red, hatched.
    g = plan.grid
    blind = g.target & ~plan.covered
    if blind.any():
        half = g.cell_m / 2
        cells = unary_union([box(x - half, y - half, x + half, y + half) for x, y in g.xy[blind]])
        fill(cells, _BLIND, 0.35)
        hatch(cells, _BLIND)
    cv2.polylines(img, polys(floor.outline), True, _BLACK, 3, cv2.LINE_AA)
    for door_id, line in floor.doors:
        pts = px(line.coords)
        cv2.line(img, tuple(int(v) for v in pts[0]), tuple(int(v) for v in pts[1]), _DOOR, 5, cv2.LINE_AA)
        cv2.putText(
            img,
            f"door {door_id}",
            (int(pts[0][0]), int(pts[0][1]) - 8),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            _DOOR,
            1,
            cv2.LINE_AA,
        )
    for i, cam in enumerate(plan.cameras):
        colour = _CAM_COLOURS[i % len(_CAM_COLOURS)]
        c = px(cam.xy_m)[0]
        centre = (int(c[0]), int(c[1]))
        if plan.camera.mount == "oblique":
            heading = math.radians(cam.heading_deg)
            tip = (int(c[0] + 18 * math.cos(heading)), int(c[1] + 18 * math.sin(heading)))
            cv2.arrowedLine(img, centre, tip, colour, 2, cv2.LINE_AA, tipLength=0.4)
        cv2.circle(img, centre, 6, colour, -1, cv2.LINE_AA)
        cv2.circle(img, centre, 6, _BLACK, 1, cv2.LINE_AA)
        cv2.putText(
            img,
            f"{i + 1}",
            (centre[0] + 7, centre[1] - 6),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.42,
            _BLACK,
            1,
            cv2.LINE_AA,
        )

    report = plan.report()
    title = (
        f"Coverage plan: {Path(floor.source).name}, ceiling {plan.ceiling_m:g} m, "
        f"{report['cameras_needed']} x {plan.camera.id}"
    )
    sub = (
        f"coverage {report['coverage_pct']}% of {report['floor_area_m2']} m2, "
        f"blind {report['blind_area_m2']} m2, {report['boxes_needed']} x {plan.box_profile.id} "
        f"({report['cameras_per_box']} cameras at {plan.fps:g} fps each)"
    )
    cv2.putText(img, title, (margin, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.65, _BLACK, 2, cv2.LINE_AA)
    cv2.putText(img, sub, (margin, 52), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _BLACK, 1, cv2.LINE_AA)
    _draw_scale_bar(img, x0, h_px - 22, scale)
    _draw_legend(img, w_px - legend_w + 20, y0)
    if not cv2.imwrite(str(out), img):
        raise PlanError(f"{out}: --out: cannot write the PNG")


def _draw_scale_bar(img: npt.NDArray[np.uint8], x: int, y: int, scale: float) -> None:
    metres = 5 if scale * 5 >= 60 else 10
    length = int(metres * scale)
    cv2.rectangle(img, (x, y - 6), (x + length // 2, y), _BLACK, -1)
    cv2.rectangle(img, (x + length // 2, y - 6), (x + length, y), _BLACK, 1)
    cv2.putText(img, "0", (x - 4, y - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.4, _BLACK, 1, cv2.LINE_AA)
    cv2.putText(
        img, f"{metres} m", (x + length - 10, y - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.4, _BLACK, 1, cv2.LINE_AA
    )
    cv2.putText(
        img,
        "x right, y down (plan metres)",
        (x + length + 20, y),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.4,
        _GREY,
        1,
        cv2.LINE_AA,
    )


def _draw_legend(img: npt.NDArray[np.uint8], x: int, y: int) -> None:
    entries: list[tuple[str, str, tuple[int, int, int]]] = [
        ("line", "floor outline", _BLACK),
        ("line", "door line", _DOOR),
        ("box", "display car (interior)", _CAR),
        ("outline", "car browse zone", _CAR_ZONE),
        ("box", "car door area", _CAR_DOOR),
        ("outline", "staff area", _STAFF),
        ("box", "wall / pillar", _OBSTACLE),
        ("dot", "camera (number)", _CAM_COLOURS[0]),
        ("outline", "where a whole person is seen", _CAM_COLOURS[0]),
        ("hatch", "blind spot", _BLIND),
    ]
    cv2.putText(img, "Legend", (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.55, _BLACK, 1, cv2.LINE_AA)
    for k, (kind, label, colour) in enumerate(entries):
        cy = y + 26 + 24 * k
        if kind == "line":
            cv2.line(img, (x, cy), (x + 28, cy), colour, 4)
        elif kind == "box":
            cv2.rectangle(img, (x, cy - 7), (x + 28, cy + 7), colour, -1)
        elif kind == "outline":
            cv2.rectangle(img, (x, cy - 7), (x + 28, cy + 7), colour, 2)
        elif kind == "dot":
            cv2.circle(img, (x + 14, cy), 6, colour, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(img, (x, cy - 7), (x + 28, cy + 7), colour, 1)
            for k2 in range(0, 36, 6):
                cv2.line(img, (x + k2 - 14, cy + 7), (x + k2, cy - 7), colour, 1)
            cv2.rectangle(img, (x + 29, cy - 8), (x + 50, cy + 8), _WHITE, -1)
        cv2.putText(img, label, (x + 56, cy + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, _BLACK, 1, cv2.LINE_AA)


# ---------------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------------


@click.command("plan")
@click.option(
    "--floor",
    "floor_file",
    required=True,
    type=click.Path(path_type=Path),
    help="STORE.yaml: a node config or a floor-only YAML.",
)
@click.option(
    "--ceiling-m",
    required=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Ceiling (camera) height, metres.",
)
@click.option(
    "--camera",
    "camera_name",
    required=True,
    help="Camera profile id (`showroom hardware profiles`) or a profile YAML.",
)
@click.option(
    "--box",
    "box_name",
    default=DEFAULT_BOX,
    show_default=True,
    help="Edge box profile id or YAML: how many boxes.",
)
@click.option("--out", "out", type=click.Path(path_type=Path), help="Write the plan drawing here (PNG).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--fps",
    default=DEFAULT_FPS,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True, max=30),
    help="Frames per second analysed per camera.",
)
@click.option(
    "--cell-m",
    default=0.25,
    show_default=True,
    type=click.FloatRange(min=0.05, max=2),
    help="Floor cell edge for the coverage grid.",
)
@click.option(
    "--grid-m",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.25, max=10),
    help="Spacing of candidate camera positions.",
)
def plan_command(
    floor_file: Path,
    ceiling_m: float,
    camera_name: str,
    box_name: str,
    out: Path | None,
    as_json: bool,
    fps: float,
    cell_m: float,
    grid_m: float,
) -> None:
    """Place ceiling cameras so the floor, every door and every display car is covered; report coverage,
    blind spots, cameras and edge boxes needed, and a bill of materials; draw the plan."""
    try:
        floor = load_floor(floor_file)
        camera = load_camera(camera_name)
        check_mounting(camera, ceiling_m, camera_name)
        box_profile = load_box(box_name)
        if box_profile.cameras_at(fps) < 1:
            raise PlanError(f"box profile {box_profile.id}: capacity: under one camera at {fps:g} fps")
        plan = make_plan(floor, camera, box_profile, ceiling_m, fps=fps, cell_m=cell_m, grid_m=grid_m)
        if out is not None:
            draw_plan(plan, out)
    except (PlanError, ProfileError, BoxProfileError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    report = plan.report()
    if out is not None:
        report["png"] = str(out)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    _print_report(report)


def _print_report(r: dict[str, Any]) -> None:
    click.echo(
        f"{r['floor']}: ceiling {r['ceiling_m']:g} m, camera {r['camera_profile']}: "
        f"{r['cameras_needed']} cameras, "
        f"coverage {r['coverage_pct']}% of {r['floor_area_m2']} m2, blind {r['blind_area_m2']} m2"
    )
    click.echo(
        f"edge boxes: {r['boxes_needed']} x {r['box_profile']} ({r['cameras_per_box']} cameras at "
        f"{r['fps_per_camera']:g} fps each, provider {r['box_provider']})"
    )
    for cam in r["cameras"]:
        x, y = cam["xy_m"]
        click.echo(f"  {cam['id']}: at ({x:g}, {y:g}) m, heading {cam['heading_deg']:g} deg")
    not_full = [i for i in r["items"] if i["coverage_pct"] < 100.0]
    click.echo(f"items: {len(r['items']) - len(not_full)} of {len(r['items'])} fully covered")
    for i in not_full:
        click.echo(f"  {i['kind']} {i['id']}: {i['coverage_pct']}%")
    for b in r["blind_spots"]:
        x, y = b["centre_m"]
        touches = f" on {', '.join(b['touches'])}" if b["touches"] else ""
        click.echo(f"  blind spot {b['area_m2']} m2 at ({x:g}, {y:g}){touches}: {b['cause']}")
    if r["box_areas"]:
        click.echo(f"split across {len(r['box_areas'])} boxes (floor.areas; overlap strip 2 m):")
        for a in r["box_areas"]:
            xs = [p[0] for p in a["polygon_m"]]
            ys = [p[1] for p in a["polygon_m"]]
            full = "  OVER CAPACITY: move cameras to a neighbour or add a box" if a["over_capacity"] else ""
            click.echo(
                f"  {a['node_id']}: x {min(xs):g}..{max(xs):g}, y {min(ys):g}..{max(ys):g} m, "
                f"{len(a['cameras'])} cameras ({', '.join(a['cameras'])}){full}"
            )
    click.echo("bill of materials:")
    for line in r["bill_of_materials"]:
        click.echo(f"  {line['quantity']} x {line['item']}")
    if "png" in r:
        click.echo(f"plan drawn: {r['png']}")
