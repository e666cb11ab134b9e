"""Camera profiles (lens geometry, mounting heights) and `showroom hardware profiles`.

Camera profiles are YAML files in `hardware/profiles/cameras/`, shipped with the package and validated
strictly; a profile can also be given as a path. Box profiles (execution providers, capacity) live with the
inference code, `vision_models.boxes`, because the edge node reads them too.

Geometry: the floor plan's metres, x right and y down the plan, z up from the floor. A camera hangs at
`mount_m` above the floor; `heading_deg` turns it about the vertical (0: the image's width along x).
"""

from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import click
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from shapely.geometry import Polygon

from vision_models.boxes import BoxProfileError, box_catalogue
from vision_models.catalogue import read_catalogue

CAMERAS_PACKAGE_DIR = "profiles/cameras"

PERSON_HEIGHT_M = 1.7
"""Height of a standing adult's head: the plane whose footprint decides where a whole person is in view."""

DETECTOR_INPUT_W = 544
"""Width of the default detector's input (RTMDet-nano 544x416): every frame is scaled to it."""

MIN_PERSON_PX = 32
"""Smallest person, in detector-input pixels, that is still detected reliably: it bounds an oblique
camera's useful range."""


class ProfileError(ValueError):
    """A camera profile that cannot be used; the message names file, key and reason (one line each)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Degrees = Annotated[float, Field(allow_inf_nan=False)]


class CameraProfile(_Model):
    """One camera model with its lens."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="Profile id.")]
    name: str = Field(min_length=1, max_length=120, description="What an installer buys.")
    lens: str = Field(min_length=1, max_length=120, description="Lens, e.g. '2.8 mm fixed'.")
    resolution_wh: tuple[Annotated[int, Field(ge=160, le=16384)], Annotated[int, Field(ge=120, le=16384)]] = (
        Field(description="Sensor output [width, height], pixels.")
    )
    hfov_deg: Degrees = Field(gt=0, le=360, description="Horizontal field of view, degrees.")
    vfov_deg: Degrees = Field(gt=0, le=360, description="Vertical field of view, degrees.")
    projection: Literal["rectilinear", "fisheye"] = Field(
        "rectilinear", description="rectilinear (ordinary lens) or fisheye (equidistant, circular image)."
    )
    mount: Literal["down", "oblique"] = Field(
        "down", description="down: optical axis vertical; oblique: tilted by tilt_deg from vertical."
    )
    tilt_deg: Degrees = Field(0.0, ge=0, lt=80, description="Tilt of the optical axis from vertical.")
    usable_half_angle_deg: Degrees | None = Field(
        None,
        gt=0,
        lt=90,
        description="Fisheye only: off-axis angle out to which people are still detected (upright enough).",
    )
    min_mount_m: float = Field(ge=2.0, le=30, description="Lowest mounting height the lens is meant for, m.")
    max_mount_m: float = Field(ge=2.0, le=30, description="Highest mounting height still useful, m.")
    source: str = Field(min_length=10, max_length=1000, description="Where the figures come from.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.max_mount_m <= self.min_mount_m:
            raise ValueError(f"max_mount_m {self.max_mount_m} must exceed min_mount_m {self.min_mount_m}")
        if self.projection == "rectilinear" and max(self.hfov_deg, self.vfov_deg) >= 170:
            raise ValueError(
                "a rectilinear lens has hfov_deg and vfov_deg below 170; use projection: fisheye"
            )
        if self.projection == "fisheye":
            if self.mount != "down":
                raise ValueError("a fisheye profile must have mount: down (ceiling, looking straight down)")
            if self.usable_half_angle_deg is None:
                raise ValueError("a fisheye profile needs usable_half_angle_deg")
            if self.usable_half_angle_deg > min(self.hfov_deg, self.vfov_deg) / 2:
                raise ValueError("usable_half_angle_deg exceeds half the field of view")
        if (self.mount == "oblique") != (self.tilt_deg > 0):
            raise ValueError("mount: oblique needs tilt_deg > 0, and mount: down needs tilt_deg 0")
        return self

    @property
    def headings_deg(self) -> tuple[float, ...]:
        """Distinct turns worth trying when placing this camera."""
        if self.projection == "fisheye":
            return (0.0,)
        if self.mount == "down":
            return (0.0,) if math.isclose(self.hfov_deg, self.vfov_deg) else (0.0, 90.0)
        return (0.0, 90.0, 180.0, 270.0)

    def max_range_m(self) -> float:
        """Slant distance at which a standing person shrinks to `MIN_PERSON_PX` in the detector's input."""
        if self.projection == "fisheye":
            return math.inf  # bounded by usable_half_angle_deg instead
        width = min(self.resolution_wh[0], DETECTOR_INPUT_W)
        focal_px = (width / 2) / math.tan(math.radians(self.hfov_deg / 2))
        return focal_px * PERSON_HEIGHT_M / MIN_PERSON_PX

    def footprint(
        self, xy_m: tuple[float, float], mount_m: float, plane_z_m: float, heading_deg: float = 0.0
    ) -> Polygon:
        """What the camera sees of the horizontal plane at `plane_z_m` (0: the floor; 1.7: heads).

        Rays through the image border (16 per edge), cut at `max_range_m`; a fisheye gives a disc out to
        `usable_half_angle_deg`. Empty when the plane is at or above the camera.
        """
        depth = mount_m - plane_z_m
        if depth <= 0:
            return Polygon()
        cx, cy = xy_m
        if self.projection == "fisheye":
            assert self.usable_half_angle_deg is not None  # checked at validation
            radius = depth * math.tan(math.radians(self.usable_half_angle_deg))
            angles = np.linspace(0, 2 * math.pi, 72, endpoint=False)
            return Polygon(np.column_stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)]))
        rays = self._border_rays(heading_deg)
        max_range = self.max_range_m()
        points = []
        for ray in rays:
            horizontal = math.hypot(ray[0], ray[1])
            if ray[2] < 0:
                t = depth / -ray[2]
                if t * float(np.linalg.norm(ray)) <= max_range:
                    points.append((cx + t * ray[0], cy + t * ray[1]))
                    continue
            # The ray meets the plane beyond the useful range (or never): stop at that range.
            reach = math.sqrt(max(max_range**2 - depth**2, 0.0))
            if horizontal > 1e-9:
                points.append((cx + reach * ray[0] / horizontal, cy + reach * ray[1] / horizontal))
        polygon = Polygon(points).buffer(0)
        return polygon if isinstance(polygon, Polygon) else Polygon()

    def _border_rays(self, heading_deg: float) -> list[np.ndarray]:
        tilt, heading = math.radians(self.tilt_deg), math.radians(heading_deg)
        # Optical axis tilted from straight down towards the heading; image width across it.
        axis = np.array(
            [math.sin(tilt) * math.cos(heading), math.sin(tilt) * math.sin(heading), -math.cos(tilt)]
        )
        right = np.array([-math.sin(heading), math.cos(heading), 0.0]) if tilt > 0 else None
        if right is None:  # looking straight down: width along the heading
            right = np.array([math.cos(heading), math.sin(heading), 0.0])
        up = np.cross(right, axis)
        tx, ty = math.tan(math.radians(self.hfov_deg / 2)), math.tan(math.radians(self.vfov_deg / 2))
        s = np.linspace(-1.0, 1.0, 17)
        border = (
            [(u, -1.0) for u in s]
            + [(1.0, v) for v in s[1:]]
            + [(u, 1.0) for u in s[::-1][1:]]
            + [(-1.0, v) for v in s[::-1][1:-1]]
        )
        return [axis + u * tx * right + v * ty * up for u, v in border]


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "(top level)"


def parse_camera(data: object, source: str) -> CameraProfile:
    """Validate one camera profile; `ProfileError` names `source`, each key and the reason."""
    try:
        return CameraProfile.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            got = "" if err["type"] == "missing" else f" (got {err['input']!r})"
            if err["type"] == "extra_forbidden":
                lines.append(f"{source}: {_format_loc(tuple(err['loc']))}: unknown key (check the spelling)")
                continue
            message = err["msg"].removeprefix("Value error, ")
            lines.append(f"{source}: {_format_loc(tuple(err['loc']))}: {message}{got}")
        raise ProfileError("\n".join(lines)) from exc


def load_camera_file(path: str | Path) -> CameraProfile:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: (file): cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: (file): not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    return parse_camera(data, str(path))


@functools.cache
def camera_catalogue() -> dict[str, CameraProfile]:
    """Every shipped camera profile, by id."""
    return read_catalogue("hardware", CAMERAS_PACKAGE_DIR, parse_camera, ProfileError)


def load_camera(name: str) -> CameraProfile:
    """A shipped camera profile by id, or a profile file by path (ending in .yaml/.yml)."""
    if name.endswith((".yaml", ".yml")):
        return load_camera_file(name)
    catalogue = camera_catalogue()
    if name not in catalogue:
        raise ProfileError(f"--camera: unknown camera profile {name!r}; known: {', '.join(catalogue)}")
    return catalogue[name]


# ---------------------------------------------------------------------------------------------------
# showroom hardware profiles
# ---------------------------------------------------------------------------------------------------

LIST_FPS = 5.0
LIST_CEILING_M = 4.0


def profiles_report() -> dict[str, list[dict[str, Any]]]:
    """Boxes with their capacity, cameras with their person footprint at a 4 m ceiling."""
    boxes = []
    for box in box_catalogue().values():
        preferred = box.providers[0]
        boxes.append(
            {
                "id": box.id,
                "name": box.name,
                "cores": box.cores,
                "providers": list(box.providers),
                "capacity_fps": round(box.capacity_fps(preferred), 1),
                "cameras_at_5fps": box.cameras_at(LIST_FPS),
                "cameras_at_5fps_cpu_only": box.cameras_at(LIST_FPS, "cpu"),
                "measured": box.measured,
                "accelerator": box.accelerator,
                "source": box.source,
            }
        )
    cameras = []
    for cam in camera_catalogue().values():
        area = cam.footprint((0.0, 0.0), LIST_CEILING_M, PERSON_HEIGHT_M).intersection(
            cam.footprint((0.0, 0.0), LIST_CEILING_M, 0.0)
        )
        cameras.append(
            {
                "id": cam.id,
                "name": cam.name,
                "lens": cam.lens,
                "resolution_wh": list(cam.resolution_wh),
                "fov_deg": [cam.hfov_deg, cam.vfov_deg],
                "mount": cam.mount if cam.mount == "down" else f"oblique {cam.tilt_deg:g} deg",
                "mount_m": [cam.min_mount_m, cam.max_mount_m],
                "person_area_m2_at_4m": round(area.area, 1),
                "source": cam.source,
            }
        )
    return {"boxes": boxes, "cameras": cameras}


@click.command("profiles")
@click.option("--json", "as_json", is_flag=True, help="Print the catalogue as JSON.")
def profiles_command(as_json: bool) -> None:
    """List the edge box profiles (capacity in cameras at 5 fps) and the camera profiles."""
    try:
        report = profiles_report()
    except (ProfileError, BoxProfileError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo("Edge boxes (capacity with the default detector, RTMDet-nano 544x416):")
    click.echo(f"  {'id':<16} {'cores':>5}  {'providers':<19} {'cameras x 5 fps':<26} figures")
    for b in report["boxes"]:
        cams = f"{b['cameras_at_5fps']} ({b['capacity_fps']} fps)"
        if b["cameras_at_5fps_cpu_only"] != b["cameras_at_5fps"]:
            cams += f", CPU only {b['cameras_at_5fps_cpu_only']}"
        figures = "measured" if b["measured"] else "estimate"
        providers = ", ".join(str(p) for p in b["providers"])
        click.echo(f"  {b['id']:<16} {b['cores']:>5}  {providers:<19} {cams:<26} {figures}: {b['name']}")
    click.echo(f"Cameras (area where a whole standing person is in view, ceiling {LIST_CEILING_M:g} m):")
    click.echo(f"  {'id':<16} {'resolution':<10} {'FOV h x v':<11} {'mount':<15} {'height m':<9} person area")
    for c in report["cameras"]:
        w, h = c["resolution_wh"]
        fh, fv = c["fov_deg"]
        lo, hi = c["mount_m"]
        click.echo(
            f"  {c['id']:<16} {f'{w}x{h}':<10} {f'{fh:g} x {fv:g}':<11} {c['mount']!s:<15} "
            f"{f'{lo:g}-{hi:g}':<9} {c['person_area_m2_at_4m']} m2: {c['name']}, {c['lens']}"
        )
