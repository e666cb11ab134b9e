"""The stores registry: which stores exist, their brand, region, time zone, floor and display cars.

One YAML file, validated strictly (unknown keys rejected, errors name the key path). A store either
states its time zone, floor size and cars itself, or references its edge nodes' config files
(`node_configs`), from which they are read; anything stated in the registry wins. Example::

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


class Registry(BaseModel):
    """Resolved brands and stores, ready to be written to storage."""

    model_config = ConfigDict(frozen=True)

    brands: tuple[BrandEntry, ...]
    stores: tuple[StoreRecord, ...]


def _resolve(entry: StoreEntry, base: Path, where: str) -> StoreRecord:
    timezone, floor, cars = entry.timezone, entry.floor_size_m, entry.cars
    node_cars: list[CarEntry] = []
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
    if timezone is None:
        raise RegistryError(f"{where}.timezone: missing (state it or reference a node config)")
    if cars is None:
        unique: dict[str, CarEntry] = {}
        for car in node_cars:
            unique.setdefault(car.id, car)
        cars = list(unique.values())
    return StoreRecord(
        store_id=entry.store_id,
        name=entry.name,
        brand=entry.brand,
        region=entry.region,
        timezone=timezone,
        floor_size_m=floor,
        browse_min_s=entry.browse_min_s,
        cars=tuple(cars),
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
