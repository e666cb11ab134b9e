"""The stores registry: which stores exist, their brand, region, time zone, floor, floor plan and cars.

One YAML file, validated strictly (unknown keys rejected, errors name the key path). A store either
states its time zone, floor size and cars itself, or references its edge nodes' config files
(`node_configs`), from which they are read; anything stated in the registry wins. The floor plan drawn
under the heatmap (`floor_plan`: a drawing, doors, staff areas, reception and other named zones) is read
from the node configs too (their `floor.image`, `doors` and `staff_areas`); reception, negotiation and
entrance zones exist only in the registry, as node configs do not describe them. Node configs hold no walls:
the floor's outline is drawn, and walls show on the drawing where one is given. Example::

    brands:
      - id: aurora
        name: Aurora Motors
        health_weights: {traffic: 2, reception: 1}   # dimensions left out weigh 1
    stores:
      - store_id: sh-pudong-01
        name: Pudong Flagship
        brand: aurora
        region: east
        node_configs: [showroom-shanghai-01.yaml]     # relative to this file
        floor_plan:
          zones:
            - id: reception
              kind: reception
              name: Reception
              polygon_m: [[30, 1], [35, 1], [35, 6], [30, 6]]
      - store_id: bj-chaoyang-02
        name: Chaoyang Mall Pop-up
        brand: aurora
        region: north
        timezone: Asia/Shanghai
        floor_size_m: [20, 12]
        cars:
          - {id: car-01, model_name: City EV, browse_zone_m: [[2, 2], [8, 2], [8, 6], [2, 6]]}
"""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge.events import ID_PATTERN
from edge.strict_yaml import YamlFileError, load_yaml_file

Identifier = Annotated[str, Field(pattern=ID_PATTERN, description="Lower-case id: a-z, 0-9, '-', '_'.")]
XY = tuple[Annotated[float, Field(allow_inf_nan=False)], Annotated[float, Field(allow_inf_nan=False)]]
Polygon = Annotated[list[XY], Field(max_length=200)]
Dimension = Literal["traffic", "activity", "attractiveness", "car_entry", "reception", "heat"]
DIMENSIONS: tuple[Dimension, ...] = (
    "traffic",
    "activity",
    "attractiveness",
    "car_entry",
    "reception",
    "heat",
)


REGISTRY_MAX_BYTES = 32 * 1024 * 1024
"""Largest registry file read (thousands of stores with their cars)."""
FLOOR_IMAGE_MAX_BYTES = 20 * 1024 * 1024
"""Largest floor plan drawing read."""
FLOOR_IMAGE_MAX_PX = 1600
"""A drawing is kept at most this many pixels on its longer side (the heatmap is drawn 600-720 px wide)."""
PlanZoneKind = Literal["reception", "negotiation", "entrance", "other"]


class RegistryError(ValueError):
    """A registry file that cannot be used; names each problem's key path."""


def _known_zone(name: str) -> str:
    """`name` if it is an IANA time zone; ValueError naming it otherwise."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
    return name


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CarEntry(_Model):
    id: Identifier
    model_name: str = Field(min_length=1, max_length=100, description="Shown on screens.")
    browse_zone_m: Polygon = Field(default_factory=list, description="Browse zone polygon, metres.")
    interior_zone_m: Polygon = Field(
        default_factory=list, description="Interior (footprint) polygon, metres."
    )


class DoorEntry(_Model):
    id: Identifier
    name: str | None = Field(
        None, min_length=1, max_length=100, description="Shown on the plan; 'Door N' there if absent."
    )
    line_m: tuple[XY, XY] = Field(description="The door line's two ends on the floor plan, metres.")


class AreaEntry(_Model):
    id: Identifier
    name: str | None = Field(
        None, min_length=1, max_length=100, description="Shown on the plan; 'Staff area N' there if absent."
    )
    polygon_m: Polygon = Field(min_length=3, description="Staff-only area, metres.")


class ZoneEntry(_Model):
    id: Identifier
    kind: PlanZoneKind
    name: str = Field(min_length=1, max_length=100, description="Shown on the plan.")
    polygon_m: Polygon = Field(min_length=3, description="The zone on the floor plan, metres.")


class FloorPlanEntry(_Model):
    """What the registry states of a store's floor plan; each part left out is read from node configs."""

    image: Path | None = Field(None, description="Floor plan drawing (PNG, JPEG), relative to this file.")
    image_px_per_m: float | None = Field(None, gt=0, le=10_000, allow_inf_nan=False)
    doors: list[DoorEntry] | None = Field(None, max_length=16)
    staff_areas: list[AreaEntry] | None = Field(None, max_length=64)
    zones: list[ZoneEntry] = Field(default_factory=list, max_length=64)


class FloorPlan(_Model):
    """A store's floor plan as the aggregator keeps it (without the drawing's pixels): drawn under the
    heatmap, and the zones of the per-zone comparison."""

    doors: tuple[DoorEntry, ...] = ()
    staff_areas: tuple[AreaEntry, ...] = ()
    zones: tuple[ZoneEntry, ...] = ()
    image_extent_m: tuple[float, float] | None = None
    """The drawing's width and depth on the floor, metres (None: no drawing)."""


class BrandEntry(_Model):
    id: Identifier
    name: str = Field(min_length=1, max_length=200)
    health_weights: dict[Dimension, Annotated[float, Field(ge=0, le=1000)]] = Field(
        default_factory=dict, description="Weight per health dimension; dimensions left out weigh 1."
    )

    def weights(self) -> dict[Dimension, float]:
        return {d: float(self.health_weights.get(d, 1.0)) for d in DIMENSIONS}


class StoreEntry(_Model):
    store_id: Identifier
    name: str = Field(min_length=1, max_length=200)
    brand: Identifier
    region: str = Field(min_length=1, max_length=100)
    timezone: str | None = Field(None, description="IANA zone; read from node_configs when absent.")
    floor_size_m: (
        tuple[Annotated[float, Field(gt=0, le=1000)], Annotated[float, Field(gt=0, le=1000)]] | None
    ) = None
    browse_min_s: float = Field(10.0, gt=0, le=3600, description="Dwell that makes a car browser.")
    cars: list[CarEntry] | None = Field(
        None, max_length=64, description="Display cars; read from node_configs when absent."
    )
    node_configs: list[Path] = Field(
        default_factory=list, max_length=16, description="Edge node config files of the store."
    )
    floor_plan: FloorPlanEntry | None = Field(
        None, description="Floor plan drawing, doors, staff areas, zones; read from node_configs when absent."
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return None if v is None else _known_zone(v)


class RegistryFile(_Model):
    brands: list[BrandEntry] = Field(default_factory=list, max_length=1000)
    stores: list[StoreEntry] = Field(min_length=1, max_length=20_000)

    @model_validator(mode="after")
    def _unique(self) -> RegistryFile:
        seen: set[str] = set()
        for s in self.stores:
            if s.store_id in seen:
                raise ValueError(f"store_id {s.store_id!r} appears twice")
            seen.add(s.store_id)
        return self


class _NodeCar(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: Identifier
    model_name: str = Field(min_length=1, max_length=100)
    browse_zone_m: Polygon
    interior_zone_m: Polygon


class _NodeFloor(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    size_m: tuple[Annotated[float, Field(gt=0, le=1000)], Annotated[float, Field(gt=0, le=1000)]]
    image: Path | None = None
    image_px_per_m: float | None = Field(None, gt=0, le=10_000, allow_inf_nan=False)


class _NodeDoor(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: Identifier
    line_m: tuple[XY, XY]


class _NodeStaffArea(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: Identifier
    polygon_m: Polygon = Field(min_length=3)


class NodeConfigFacts(BaseModel):
    """What the registry reads from an edge node's config file: the store, its time zone, floor and cars.

    The node config's file format is the installer's contract; the aggregator reads only these keys of it
    (the node itself validates the whole file, `showroom edge check-config`), so it depends on no edge code
    beyond the event contract.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    store_id: Identifier
    timezone: str
    floor: _NodeFloor
    cars: list[_NodeCar] = Field(default_factory=list)
    doors: list[_NodeDoor] = Field(default_factory=list)
    staff_areas: list[_NodeStaffArea] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return _known_zone(v)


def read_node_config(path: Path) -> NodeConfigFacts:
    """The registry's facts from a node config file; `RegistryError` names the file and each problem."""
    try:
        data = load_yaml_file(path)
    except YamlFileError as exc:
        raise RegistryError(f"{path}: {exc}") from None
    try:
        return NodeConfigFacts.model_validate(data)
    except ValidationError as exc:
        raise RegistryError(f"{path}: {_problems(exc)}") from exc


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()
    )


class StoreRecord(BaseModel):
    """A store as the aggregator keeps it: everything resolved, nothing optional that queries need."""

    model_config = ConfigDict(frozen=True)

    store_id: str
    name: str
    brand: str
    region: str
    timezone: str
    floor_size_m: tuple[float, float] | None
    browse_min_s: float
    cars: tuple[CarEntry, ...]
    plan: FloorPlan = FloorPlan()
    floor_image_png: bytes | None = None
    """The floor plan drawing, re-encoded as PNG (at most FLOOR_IMAGE_MAX_PX a side)."""


class Registry(BaseModel):
    """Resolved brands and stores, ready to be written to storage."""

    model_config = ConfigDict(frozen=True)

    brands: tuple[BrandEntry, ...]
    stores: tuple[StoreRecord, ...]


def read_floor_image(path: Path) -> tuple[bytes, tuple[int, int]]:
    """The drawing at `path` as PNG bytes (shrunk to FLOOR_IMAGE_MAX_PX a side, metadata dropped) and its
    original (width, height) in pixels; `RegistryError` saying why it cannot be used."""
    import cv2  # only when a store has a drawing: the aggregator's service otherwise never loads it

    try:
        size = path.stat().st_size
        if size > FLOOR_IMAGE_MAX_BYTES:
            raise RegistryError(f"floor image {path}: {size} bytes, more than {FLOOR_IMAGE_MAX_BYTES}")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RegistryError(f"floor image {path}: no such file") from None
    except OSError as exc:
        raise RegistryError(f"floor image {path}: cannot be read ({exc.strerror or exc})") from None
    image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise RegistryError(f"floor image {path}: not a readable image (PNG or JPEG expected)")
    h, w = image.shape[:2]
    scale = min(1.0, FLOOR_IMAGE_MAX_PX / max(w, h))
    if scale < 1.0:
        image = cv2.resize(
            image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    ok, png = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - encoding a decoded 8-bit image does not fail
        raise RegistryError(f"floor image {path}: could not be re-encoded")
    return png.tobytes(), (w, h)


def _image_extent(
    size_px: tuple[int, int], px_per_m: float | None, floor: tuple[float, float] | None
) -> tuple[float, float]:
    """Where the drawing lies on the floor: from its top-left corner, its pixels at `px_per_m`, or
    stretched over the floor when no scale is given."""
    if px_per_m is not None:
        return (size_px[0] / px_per_m, size_px[1] / px_per_m)
    if floor is None:
        raise RegistryError(
            "floor_plan.image: give image_px_per_m or the floor's size_m to place the drawing"
        )
    return floor


def _resolve(entry: StoreEntry, base: Path, where: str) -> StoreRecord:
    timezone, floor, cars = entry.timezone, entry.floor_size_m, entry.cars
    node_cars: list[CarEntry] = []
    node_doors: dict[str, DoorEntry] = {}
    node_staff: dict[str, AreaEntry] = {}
    node_image: tuple[Path, float | None] | None = None
    for rel in entry.node_configs:
        # Node configs are the installer's source of truth for floor and cars.
        path = rel if rel.is_absolute() else base / rel
        try:
            cfg = read_node_config(path)
        except RegistryError as exc:
            raise RegistryError(f"{where}.node_configs: {exc}") from exc
        if cfg.store_id != entry.store_id:
            raise RegistryError(
                f"{where}.node_configs: {path} is for store {cfg.store_id!r}, not {entry.store_id!r}"
            )
        timezone = timezone or cfg.timezone
        floor = floor or (float(cfg.floor.size_m[0]), float(cfg.floor.size_m[1]))
        node_cars.extend(
            CarEntry(
                id=c.id,
                model_name=c.model_name,
                browse_zone_m=c.browse_zone_m,
                interior_zone_m=c.interior_zone_m,
            )
            for c in cfg.cars
        )
        for d in cfg.doors:
            node_doors.setdefault(d.id, DoorEntry(id=d.id, line_m=d.line_m))
        for a in cfg.staff_areas:
            node_staff.setdefault(a.id, AreaEntry(id=a.id, polygon_m=a.polygon_m))
        if node_image is None and cfg.floor.image is not None:
            # The drawing's path is relative to the node config that names it.
            image = cfg.floor.image if cfg.floor.image.is_absolute() else path.parent / cfg.floor.image
            node_image = (image, cfg.floor.image_px_per_m)
    if timezone is None:
        raise RegistryError(f"{where}.timezone: missing (state it or reference a node config)")
    if cars is None:
        unique: dict[str, CarEntry] = {}
        for car in node_cars:
            unique.setdefault(car.id, car)
        cars = list(unique.values())
    stated = entry.floor_plan or FloorPlanEntry()
    image_source = node_image
    if stated.image is not None:
        image_source = (
            stated.image if stated.image.is_absolute() else base / stated.image,
            stated.image_px_per_m,
        )
    png, extent = None, None
    if image_source is not None:
        try:
            png, size_px = read_floor_image(image_source[0])
            extent = _image_extent(size_px, image_source[1], floor)
        except RegistryError as exc:
            raise RegistryError(f"{where}.floor_plan: {exc}") from exc
    plan = FloorPlan(
        doors=tuple(stated.doors if stated.doors is not None else node_doors.values()),
        staff_areas=tuple(stated.staff_areas if stated.staff_areas is not None else node_staff.values()),
        zones=tuple(stated.zones),
        image_extent_m=extent,
    )
    return StoreRecord(
        store_id=entry.store_id,
        name=entry.name,
        brand=entry.brand,
        region=entry.region,
        timezone=timezone,
        floor_size_m=floor,
        browse_min_s=entry.browse_min_s,
        cars=tuple(cars),
        plan=plan,
        floor_image_png=png,
    )


def parse_registry(data: Any, base: Path = Path(), source: str = "<registry>") -> Registry:
    """Validate registry data (already loaded from YAML); `RegistryError` names each problem."""
    try:
        raw = RegistryFile.model_validate(data)
    except ValidationError as exc:
        raise RegistryError(f"{source}: {_problems(exc)}") from exc
    stores = tuple(_resolve(s, base, f"{source}: stores[{i}]") for i, s in enumerate(raw.stores))
    return Registry(brands=tuple(raw.brands), stores=stores)


def load_registry(path: str | Path) -> Registry:
    """Read and validate a registry YAML file."""
    path = Path(path)
    try:
        data = load_yaml_file(path, max_bytes=REGISTRY_MAX_BYTES)
    except YamlFileError as exc:
        raise RegistryError(f"{path}: {exc}") from None
    return parse_registry(data, path.parent, str(path))
