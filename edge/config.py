"""Node configuration: one YAML file per edge node, validated strictly.

Everything spatial is in floor-plan metres (origin at the plan's top-left corner, x to the right, y down
the plan), drawn once on the plan rather than per camera. Unknown keys are rejected and every error names
its key path and the offending value. Secrets never live in the file: the broker password comes from an
environment variable or a file named here.
"""

from __future__ import annotations

import math
import os
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from shapely.geometry import LineString, Point, Polygon, box
from shapely.validation import explain_validity

from edge.events import ID_PATTERN
from edge.mqtt_common import BrokerAddress
from edge.store_areas import crossing_problems, tiling_problems
from edge.strict_yaml import YamlFileError, load_yaml_file
from vision_models.boxes import BoxProfileError, load_box
from vision_models.registry import ModelError, Task, get_entry, require_task

XY = Annotated[
    tuple[
        Annotated[float, Field(allow_inf_nan=False)],
        Annotated[float, Field(allow_inf_nan=False)],
    ],
    Field(description="A point [x, y]."),
]
MAX_POLYGON_POINTS = 200
"""Most points of one drawn polygon (a car's zone is a handful; a curved showroom wall a few dozen)."""

PolygonM = Annotated[
    list[XY],
    Field(
        max_length=MAX_POLYGON_POINTS,
        description=f"Polygon on the floor plan, [[x, y], ...] in metres, 3 to {MAX_POLYGON_POINTS} points.",
    ),
]
MAX_PIXELS = 16_384
"""Largest image side any camera or model input may have, pixels."""
PixelsWH = tuple[Annotated[int, Field(ge=1, le=MAX_PIXELS)], Annotated[int, Field(ge=1, le=MAX_PIXELS)]]
Identifier = Annotated[str, Field(pattern=ID_PATTERN, description="Lower-case id: a-z, 0-9, '-', '_'.")]


class ConfigError(ValueError):
    """A node configuration that cannot be used; `problems` lists `(key path, message)` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {path}: {message}" for path, message in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in the configuration\n{lines}")


class CrossFieldError(ValueError):
    """Rules that span several keys; carries each problem with its own key path."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {message}" for path, message in problems))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def polygon_of(points: list[XY], what: str) -> Polygon:
    """A valid, simple shapely polygon, or `ValueError` saying why not."""
    if len(points) < 3:
        raise ValueError(f"{what} needs at least 3 points, got {len(points)}")
    poly = Polygon(points)
    if not poly.is_valid:
        raise ValueError(f"{what} is not a simple polygon: {explain_validity(poly)}")
    if poly.area <= 0:
        raise ValueError(f"{what} has zero area (its points are collinear or repeated)")
    return poly


def _check_polygon(points: list[XY], what: str) -> list[XY]:
    polygon_of(points, what)
    return points


# ---------------------------------------------------------------------------------------------------
# Broker
# ---------------------------------------------------------------------------------------------------


class TlsConfig(_Model):
    ca_file: Path | None = Field(None, description="CA bundle to verify the broker; system CAs when absent.")
    cert_file: Path | None = Field(None, description="Client certificate for mutual TLS.")
    key_file: Path | None = Field(None, description="Client key for mutual TLS.")
    insecure_skip_verify: bool = Field(False, description="Never in production: skip hostname checks.")


class BrokerConfig(_Model):
    url: str = Field(
        "mqtt://127.0.0.1:1883",
        pattern=r"^mqtts?://[^\s/:]+(:\d{1,5})?/?$",
        max_length=300,
        description="mqtt://host:port or mqtts://host:port (TLS); port 1-65535.",
    )
    username: str | None = Field(None, max_length=200)
    password_env: str | None = Field(
        None, pattern=r"^[A-Z_][A-Z0-9_]*$", description="Environment variable holding the password."
    )
    password_file: Path | None = Field(
        None, description="File whose first line is the password (relative: to the config file's folder)."
    )
    tls: TlsConfig | None = None
    keepalive_s: int = Field(30, ge=5, le=600)
    client_id: str | None = Field(None, max_length=64, description="Defaults to showroom-{store}-{node}.")

    @field_validator("url")
    @classmethod
    def _port(cls, v: str) -> str:
        port = v.rstrip("/").rsplit(":", 1)[-1]
        if port.isdigit() and not 1 <= int(port) <= 65535:
            raise ValueError(f"port {port} is not between 1 and 65535")
        return v

    @model_validator(mode="after")
    def _one_password_source(self) -> Self:
        if self.password_env and self.password_file:
            raise ValueError("give either password_env or password_file, not both")
        return self

    def password(self) -> str | None:
        """The password from its environment variable or file; `ConfigError` if it is missing."""
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError("broker", [("broker.password_env", f"${self.password_env} is not set")])
            return value
        if self.password_file:
            try:
                return self.password_file.read_text(encoding="utf-8").splitlines()[0]
            except (OSError, IndexError, UnicodeDecodeError) as exc:
                raise ConfigError("broker", [("broker.password_file", f"cannot read: {exc}")]) from exc
        return None

    @property
    def host_port(self) -> tuple[str, int]:
        address = BrokerAddress.parse(self.url, tls=self.uses_tls)
        return address.host, address.port

    @property
    def uses_tls(self) -> bool:
        return self.url.startswith("mqtts://") or self.tls is not None


# ---------------------------------------------------------------------------------------------------
# Cameras and calibration
# ---------------------------------------------------------------------------------------------------


class Calibration(_Model):
    """Image-to-floor correspondences: the same physical points in image pixels and in floor metres."""

    image_points_px: list[XY] = Field(
        min_length=4, max_length=200, description="Points in the camera image, pixels."
    )
    floor_points_m: list[XY] = Field(
        min_length=4, max_length=200, description="The same points on the floor plan, metres."
    )
    max_error_m: float = Field(
        0.3, gt=0, le=5, description="Largest acceptable mean reprojection error of the fitted homography."
    )
    max_loo_error_m: float = Field(
        0.3,
        gt=0,
        le=5,
        description=(
            "Largest acceptable leave-one-out error of any pair, metres: the distance on the floor between a "
            "mark and where its image point lands when the homography is fitted on the other pairs only "
            "(0.3 m: about one floor tile, or half a stride; a person placed further off may be counted in "
            "the wrong car zone or on the wrong side of a door line)."
        ),
    )
    allow_few_points: bool = Field(
        False,
        description=(
            "Accept a calibration of 4 or 5 pairs (with a warning). Off: at least 6 are needed, so that "
            "every pair is checked against a fit of the others with points to spare; with 4, no pair can "
            "be checked at all."
        ),
    )

    @model_validator(mode="after")
    def _pairs(self) -> Self:
        if len(self.image_points_px) != len(self.floor_points_m):
            raise ValueError(
                f"image_points_px has {len(self.image_points_px)} points but floor_points_m has "
                f"{len(self.floor_points_m)}; they must pair up"
            )
        return self


class CameraConfig(_Model):
    id: Identifier
    source: str = Field(
        min_length=1,
        max_length=2000,
        description="rtsp://, http(s)://, usb:N, a video file path (file: prefix optional) or sim://...",
    )
    fps: float = Field(5.0, gt=0, le=30, description="Target frames per second to analyse.")
    loop: bool = Field(False, description="For video files: start again at the end.")
    resolution_wh: PixelsWH | None = Field(None, description="Expected frame size [w, h], pixels.")
    calibration: Calibration | None = Field(None, description="Needed for every camera that counts.")
    anchor: Literal["bottom_center", "center"] = Field(
        "bottom_center", description="bottom_center for oblique views (feet), center for top-down views."
    )
    reference_image: Path | None = Field(
        None,
        description="Commissioning view of the empty floor (stays on the box): a frame that no longer "
        "resembles it means the camera was moved. Absent: the first good frame after start is used; "
        "a path to a missing file: the first good frame is saved there.",
    )


# ---------------------------------------------------------------------------------------------------
# Floor, doors, cars, staff
# ---------------------------------------------------------------------------------------------------


class BoxArea(_Model):
    """The part of the floor one edge box owns in a store served by several boxes."""

    node_id: Identifier = Field(description="The edge node (box) that owns this area.")
    polygon_m: PolygonM = Field(description="The area on the floor plan, metres.")

    @field_validator("polygon_m")
    @classmethod
    def _poly(cls, v: list[XY]) -> list[XY]:
        return _check_polygon(v, "area")


class FloorConfig(_Model):
    size_m: tuple[
        Annotated[float, Field(gt=0, le=1000)],
        Annotated[float, Field(gt=0, le=1000)],
    ] = Field(description="Floor plan width and depth in metres.")
    image: Path | None = Field(None, description="Optional floor plan drawing, shown under heatmaps.")
    image_px_per_m: float | None = Field(
        None, gt=0, le=10_000, allow_inf_nan=False, description="Scale of the floor plan drawing."
    )
    areas: list[BoxArea] = Field(
        default_factory=list,
        description="A store served by several edge boxes: each box's part of the floor. The areas tile the "
        "floor without overlapping; empty: one box owns the whole floor.",
    )
    overlap_m: float = Field(
        2.0,
        gt=0,
        le=20,
        description="How far past its boundary with a neighbour each box's cameras must see (the strip both "
        "boxes see, where a visitor is handed over), metres.",
    )

    def polygon(self) -> Polygon:
        return box(0, 0, self.size_m[0], self.size_m[1])


class DoorConfig(_Model):
    id: Identifier
    line_m: tuple[XY, XY] = Field(description="The door line's two ends on the floor plan, metres.")
    inside_point_m: XY = Field(description="Any point on the shop-floor side of the line.")
    hysteresis_m: float = Field(
        0.4, ge=0, le=3, description="A crossing counts once the person is this far past the line."
    )

    @model_validator(mode="after")
    def _geometry(self) -> Self:
        (x1, y1), (x2, y2) = self.line_m
        length = math.hypot(x2 - x1, y2 - y1)
        if length < 0.3:
            raise ValueError(f"line_m has length {length:.2f} m; a door line must be at least 0.3 m long")
        px, py = self.inside_point_m
        side = (x2 - x1) * (py - y1) - (y2 - y1) * (px - x1)
        if abs(side) / length < 0.05:
            raise ValueError("inside_point_m lies on the door line; put it on the shop-floor side")
        return self


class CarConfig(_Model):
    id: Identifier
    model_name: str = Field(min_length=1, max_length=100, description="Shown on screens, e.g. 'Model Y'.")
    browse_zone_m: PolygonM = Field(description="Area around the car where a visitor counts as browsing.")
    interior_zone_m: PolygonM = Field(description="The car's footprint: a person in it is in the car.")
    door_areas_m: list[PolygonM] = Field(
        min_length=1, max_length=8, description="Areas beside the car's doors through which a person gets in."
    )
    height_m: float = Field(
        1.5,
        gt=0.5,
        le=4.0,
        description="Roof height: an oblique camera sees people behind the car cut off at its roof line.",
    )

    @field_validator("browse_zone_m", "interior_zone_m")
    @classmethod
    def _zone(cls, v: list[XY]) -> list[XY]:
        return _check_polygon(v, "zone")

    @field_validator("door_areas_m")
    @classmethod
    def _doors(cls, v: list[list[XY]]) -> list[list[XY]]:
        for i, area in enumerate(v):
            _check_polygon(area, f"door area {i}")
        return v

    @model_validator(mode="after")
    def _nested(self) -> Self:
        browse, interior = Polygon(self.browse_zone_m), Polygon(self.interior_zone_m)
        if not browse.buffer(1e-6).contains(interior):
            raise ValueError("interior_zone_m must lie inside browse_zone_m")
        for i, area in enumerate(self.door_areas_m):
            if not Polygon(area).intersects(interior):
                raise ValueError(f"door_areas_m[{i}] does not touch interior_zone_m")
        return self


class StaffArea(_Model):
    id: Identifier
    polygon_m: PolygonM = Field(description="Staff-only area; whoever is seen in it is marked staff.")

    @field_validator("polygon_m")
    @classmethod
    def _zone(cls, v: list[XY]) -> list[XY]:
        return _check_polygon(v, "staff area")


class StaffAppearance(_Model):
    """Uniform colour cue, calibrated at installation from a few torso crops (computed on the box)."""

    uniform_hsv: tuple[
        Annotated[float, Field(ge=0, le=180)],
        Annotated[float, Field(ge=0, le=255)],
        Annotated[float, Field(ge=0, le=255)],
    ] = Field(description="Mean uniform colour in OpenCV HSV (H 0-180, S and V 0-255).")
    tolerance_hsv: tuple[
        Annotated[float, Field(gt=0, le=90)],
        Annotated[float, Field(gt=0, le=255)],
        Annotated[float, Field(gt=0, le=255)],
    ] = Field((10, 60, 60), description="Accepted deviation per channel.")
    min_fraction: float = Field(
        0.4, gt=0, le=1, description="Share of torso pixels within tolerance to mark a person staff."
    )
    min_observations: int = Field(5, ge=1, le=1000, description="Frames that must agree before marking.")


class Thresholds(_Model):
    """DOMAIN.md's defaults."""

    browse_min_s: float = Field(10.0, gt=0, le=3600, description="Dwell that makes a visitor a car browser.")
    car_entry_min_s: float = Field(3.0, gt=0, le=600, description="Time inside a car that makes an entry.")
    reception_min_s: float = Field(30.0, gt=0, le=3600, description="Time near staff that makes a reception.")
    reception_radius_m: float = Field(1.5, gt=0, le=10, description="Distance to staff that counts as near.")
    heat_cell_m: float = Field(
        0.25, ge=0.1, le=5, description="Heatmap cell edge, metres (0.1 to 5: the event contract's range)."
    )
    lost_after_s: float = Field(
        60.0, gt=0, le=3600, description="A visitor unseen this long away from the door has left for good."
    )
    in_car_max_s: float = Field(
        900.0,
        gt=0,
        le=7200,
        description="How long a visitor who vanished into a display car (seated) is waited for.",
    )
    visit_confirm_s: float = Field(
        2.0,
        ge=0,
        le=60,
        description="A person who crosses inward and back out within this time is not a visitor.",
    )


class ReidConfig(_Model):
    """On-box re-identification: an appearance embedding for the person boxes that need one (a track's
    first frames, a hidden person coming back, people side by side), so a track follows its person and not
    whoever walks by. Embeddings never leave the box."""

    model: str = Field("person-reid-0288", min_length=1, description="Re-identification model id (registry).")
    refresh_s: float = Field(
        1.0, gt=0, le=60, description="How often a tracked person's appearance is refreshed, seconds."
    )
    max_per_step: int = Field(
        8, ge=1, le=256, description="Most boxes embedded per time step, all cameras (10-13 ms of CPU each)."
    )
    same_person_distance: float = Field(
        0.15,
        gt=0,
        le=2,
        description=(
            "Cosine distance between a tracked person's appearance and a box beyond which the box is "
            "somebody else (0.15: the 99th percentile for the same person with person-reid-0288)."
        ),
    )
    weight: float = Field(
        20.0, ge=0, le=1000, description="Weight of the appearance distance in the tracker's matching cost."
    )
    threads: int = Field(1, ge=1, le=64, description="Inference threads of the re-identification model.")

    @field_validator("model")
    @classmethod
    def _reid_model(cls, v: str) -> str:
        return _model_of_task(v, "reid")


def _model_of_task(model_id: str, task: Task) -> str:
    """`model_id`, if the registry knows it (built in, imported with `showroom models import`, or a local
    INT8 variant) as a model for `task`: a typo, a model not imported on this machine, or a detector named
    where a re-identification model belongs (or the reverse) is an error here, not when the node starts."""
    try:
        require_task(get_entry(model_id), task)
    except ModelError as exc:
        raise ValueError(str(exc)) from None
    return model_id


class TrackerConfig(_Model):
    """The floor-plane tracker (Kalman filter in metres, two-stage association of high and low scores)."""

    type: Literal["floor-kalman"] = "floor-kalman"
    high_score: float = Field(
        0.5, gt=0, lt=1, description="Detections at least this confident are matched first and start tracks."
    )
    new_track_score: float = Field(0.7, gt=0, le=1, description="Least confidence that starts a new track.")
    weak_birth_score: float = Field(
        0.35,
        gt=0,
        le=1,
        description="Least confidence that starts a tentative track when the box has the size of a person "
        "standing at its floor position (`stature_range`) and no tracked person explains it (a far, small "
        "person scores low on every frame). Such a track reaches analytics only once it has walked "
        "`weak_birth_travel_m` or scored `new_track_score`: flicker and static clutter stay out.",
    )
    person_stature_m: float = Field(
        1.7, gt=0.5, le=2.5, description="A typical adult's height, metres: the yardstick of `stature_range`."
    )
    stature_range: tuple[float, float] = Field(
        (0.6, 1.35),
        description="Box heights that are a person's, as fractions of `person_stature_m` at the box's "
        "floor position (the calibration's metres per pixel across the image row at the feet): 0.6-1.35 of "
        "1.7 m is 1.0-2.3 m, a child to a tall adult with box slack. Only boxes in this range start tracks "
        "below `new_track_score`.",
    )
    weak_birth_travel_m: float = Field(
        0.5,
        ge=0,
        le=5,
        description="How far a track started from weak detections must have walked (and beyond its "
        "position noise) before it is confirmed: a person walks, a poster or a reflection stays put.",
    )
    confirm_hits: int = Field(3, ge=1, le=30, description="Matched frames before a track reaches analytics.")
    max_lost_s: float = Field(
        4.0, ge=0, le=60, description="How long a hidden person (behind a car, a pillar) keeps their track."
    )
    fuse_radius_m: float = Field(
        0.8, gt=0, le=5, description="Detections from different cameras closer than this are one person."
    )
    max_speed_mps: float = Field(3.0, gt=0, le=20, description="Fastest plausible walking speed.")
    accel_mps2: float = Field(1.5, gt=0, le=50, description="Typical acceleration (Kalman process noise).")
    box_noise: float = Field(
        0.08, gt=0, le=1, description="Foot-point uncertainty as a fraction of the box height, pixels."
    )
    reid: ReidConfig | None = Field(
        None, description="Appearance re-identification on the box (off when absent)."
    )
    max_tracks: int = Field(
        200,
        ge=1,
        le=1000,
        description="The most people (tentative tracks included) the node tracks at once, so that time and "
        "memory stay bounded whatever the detector returns (a car launch with 130 people on a 4-camera "
        "floor takes about 7 ms per step). Beyond it the most confident newcomers get the free places; the "
        "rest start no track and are reported in the heartbeat (`over_capacity`), never dropped silently.",
    )

    @model_validator(mode="after")
    def _birth_scores(self) -> TrackerConfig:
        low, high = self.stature_range
        if not 0 < low < 1 < high <= 3:
            raise ValueError(f"stature_range must satisfy 0 < low < 1 < high <= 3, got {self.stature_range}")
        if self.weak_birth_score > self.new_track_score:
            raise ValueError(
                f"weak_birth_score ({self.weak_birth_score}) must not exceed new_track_score "
                f"({self.new_track_score})"
            )
        return self


class DetectorConfig(_Model):
    type: Literal["onnx"] = "onnx"
    model: str = Field("rtmdet-nano-person", min_length=1, description="Model id from the registry.")
    input_size_wh: (
        tuple[Annotated[int, Field(ge=32, le=4096)], Annotated[int, Field(ge=32, le=4096)]] | None
    ) = Field(None, description="Network input [w, h] (32 to 4096 pixels); model default.")
    score_threshold: float = Field(0.3, gt=0, lt=1)
    threads: int = Field(2, ge=1, le=64)

    @field_validator("model")
    @classmethod
    def _detector_model(cls, v: str) -> str:
        return _model_of_task(v, "detect")


class BoxConfig(_Model):
    """The edge box the node runs on: its profile decides the detector's execution provider."""

    profile: str = Field(
        min_length=1,
        max_length=64,
        description="Box profile id (`showroom hardware profiles`), e.g. intel-n100-4c; the detector uses "
        "the profile's first execution provider this machine's ONNX Runtime offers, else the CPU.",
    )

    @field_validator("profile")
    @classmethod
    def _known(cls, v: str) -> str:
        if v.endswith((".yaml", ".yml")):
            raise ValueError("name a shipped box profile by its id, not a file")
        try:
            load_box(v)
        except BoxProfileError as exc:
            raise ValueError(str(exc)) from None
        return v


class OutboxConfig(_Model):
    path: Path = Field(
        Path("outbox.sqlite"),
        description="Local SQLite outbox (relative: in the node's state directory, see `node_state_dir`).",
    )
    max_mb: float = Field(
        512, gt=0, le=1_000_000, description="Disk budget; oldest heat goes first, visit events last."
    )
    history_days: float = Field(
        7,
        ge=0,
        le=366,
        description="Days an acknowledged payload is kept for the aggregator to ask for again (replay), "
        "within the disk budget; 0 deletes on acknowledgement.",
    )


class NodeConfig(_Model):
    """One edge node: its store, its broker, its cameras and the floor they cover."""

    store_id: Identifier
    node_id: Identifier
    timezone: str = Field(max_length=64, description="IANA time zone of the store, e.g. 'Asia/Shanghai'.")
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    cameras: list[CameraConfig] = Field(min_length=1, max_length=64, description="At most 64 per node.")
    floor: FloorConfig
    doors: list[DoorConfig] = Field(min_length=1, max_length=16)
    cars: list[CarConfig] = Field(default_factory=list, max_length=64)
    staff_areas: list[StaffArea] = Field(default_factory=list, max_length=64)
    staff_appearance: StaffAppearance | None = None
    thresholds: Thresholds = Field(default_factory=Thresholds)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    box: BoxConfig | None = Field(
        None, description="The edge box's profile; absent: the detector runs on the CPU."
    )
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as 'Asia/Shanghai')") from exc
        return v

    @model_validator(mode="after")
    def _cross(self) -> Self:
        problems: list[tuple[str, str]] = []
        for what, items in (
            ("cameras", self.cameras),
            ("doors", self.doors),
            ("cars", self.cars),
            ("staff_areas", self.staff_areas),
        ):
            ids = [item.id for item in items]
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                problems.append((what, f"duplicate id(s) {', '.join(dupes)}"))
        floor = self.floor.polygon().buffer(1e-6)
        extent = f"0..{self.floor.size_m[0]} x 0..{self.floor.size_m[1]} m"
        for i, car in enumerate(self.cars):
            for key in ("browse_zone_m", "interior_zone_m"):
                if not floor.contains(Polygon(getattr(car, key))):
                    msg = f"car {car.id!r} lies outside the floor plan {extent}"
                    problems.append((f"cars[{i}].{key}", msg))
        for i, door in enumerate(self.doors):
            if not floor.intersects(LineString(door.line_m)):
                msg = f"door {door.id!r} lies outside the floor plan {extent}"
                problems.append((f"doors[{i}].line_m", msg))
            if not floor.contains(Point(door.inside_point_m)):
                problems.append((f"doors[{i}].inside_point_m", f"outside the floor plan {extent}"))
        for i, area in enumerate(self.staff_areas):
            if not floor.intersects(Polygon(area.polygon_m)):
                problems.append(
                    (f"staff_areas[{i}].polygon_m", f"area {area.id!r} lies outside the floor plan {extent}")
                )
        problems += area_problems(self)
        if problems:
            raise CrossFieldError(problems)
        return self

    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


def area_problems(config: NodeConfig) -> list[tuple[str, str]]:
    """A store served by several boxes (`floor.areas`): the areas must tile the floor, name this node, and
    leave every car's browse zone to one box."""
    floor = config.floor
    if not floor.areas:
        return []
    areas = [(a.node_id, a.polygon_m) for a in floor.areas]
    problems = tiling_problems(floor.size_m, areas)
    if config.node_id not in {a.node_id for a in floor.areas}:
        names = ", ".join(a.node_id for a in floor.areas)
        problems.append(
            ("floor.areas", f"no area belongs to this node {config.node_id!r} (areas of: {names})")
        )
    zones = [
        (f"cars[{i}].browse_zone_m", f"car {c.id!r}", c.browse_zone_m) for i, c in enumerate(config.cars)
    ]
    return problems + crossing_problems(areas, zones)


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def problems_of(exc: ValidationError) -> list[tuple[str, str]]:
    """(key path, message with the offending value) for each error pydantic found."""
    problems: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, CrossFieldError):
            prefix = _format_loc(tuple(err["loc"]))
            prefix = "" if prefix == "(top level)" else prefix + "."
            problems += [(prefix + path, message) for path, message in cause.problems]
            continue
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        shown = repr(value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        elif err["type"] == "missing":
            msg = "required key is missing"
            shown = ""
        problems.append((_format_loc(tuple(err["loc"])), f"{msg}" + (f" (got {shown})" if shown else "")))
    return problems


def parse_config(data: Any, source: str = "<config>") -> NodeConfig:
    """Validate already-loaded config data; `ConfigError` lists every problem."""
    if not isinstance(data, dict):
        raise ConfigError(source, [("(top level)", f"expected a mapping, got {type(data).__name__}")])
    try:
        return NodeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, problems_of(exc)) from exc


def load_config(path: str | Path) -> NodeConfig:
    """Read and validate a node configuration file (YAML, UTF-8, no key given twice). Files it names
    (password, TLS, floor plan image) are resolved relative to the config file's folder."""
    path = Path(path)
    try:
        data = load_yaml_file(path)
    except YamlFileError as exc:
        raise ConfigError(str(path), [(exc.where, exc.message)]) from None
    config = parse_config(data, str(path))
    # Beside the config, like every file a config names: the node finds them from any working directory.
    broker = config.broker
    if broker.password_file is not None:
        broker = broker.model_copy(update={"password_file": resolve_path(path, broker.password_file)})
    if broker.tls is not None:
        tls = broker.tls
        tls = tls.model_copy(
            update={
                name: resolve_path(path, value)
                for name in ("ca_file", "cert_file", "key_file")
                if (value := getattr(tls, name)) is not None
            }
        )
        broker = broker.model_copy(update={"tls": tls})
    floor = config.floor
    if floor.image is not None:
        floor = floor.model_copy(update={"image": resolve_path(path, floor.image)})
    return config.model_copy(update={"broker": broker, "floor": floor})


def resolve_path(config_file: Path, value: Path) -> Path:
    """Relative paths in a config are relative to the config file's folder."""
    return value if value.is_absolute() else (config_file.parent / value)


STATE_DIR_ENV = "SHOWROOM_STATE_DIR"


def state_dir() -> Path:
    """Where the product keeps the files it writes while running: outboxes, caches, the demo's databases.

    `$SHOWROOM_STATE_DIR` if set; else the user's data directory, `$XDG_DATA_HOME/showroom` (an absolute
    `XDG_DATA_HOME` only, as the XDG spec says) or `~/.local/share/showroom`; else, for an account with no
    home directory, `var/` in the working directory. Never the folder of a config file: a config inside a
    checkout must not make the node write into it. Nothing is created here; writers create what they use.
    """
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME")
    if data_home and Path(data_home).is_absolute():
        return Path(data_home) / "showroom"
    try:
        return Path.home() / ".local" / "share" / "showroom"
    except RuntimeError:  # no home directory to find
        return Path.cwd() / "var"


def node_state_dir(config: NodeConfig) -> Path:
    """One node's runtime files: `state_dir()/{store_id}/{node_id}`, so nodes never share an outbox."""
    return state_dir() / config.store_id / config.node_id


def resolve_state_path(config: NodeConfig, value: Path) -> Path:
    """A runtime file the config names (the outbox): absolute as given, relative in `node_state_dir`."""
    return value if value.is_absolute() else node_state_dir(config) / value
