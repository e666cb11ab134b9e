"""Edge box profiles: which ONNX Runtime execution providers a box offers and how many cameras it serves.

Each profile is a YAML file in `vision_models/boxes/` (shipped with the package), validated strictly. A
box's capacity is derived from milliseconds per analysed frame, never stated by hand:

- detector on the CPU: `capacity_fps = cores * 1000 * USABLE_CPU_FRACTION / cpu_ms_per_frame`, where
  `cpu_ms_per_frame` is the whole node's CPU per analysed frame (decode, detection, tracking, analytics,
  outbox) with the default detector (RTMDet-nano 544x416);
- detector on an accelerator: the smaller of the CPU bound (with `offload.cpu_ms_per_frame`, the node
  without its detector) and `1000 * USABLE_CPU_FRACTION / offload.detector_ms_per_frame`.

The reference (`x86-2c`) is measured on the project's reference machine (BENCHMARKS.md, "Node throughput"):
64 ms of node CPU per frame at 4 cameras x 5 fps, sustained with 0% dropped frames on 2 cores while the
node used 1.25-1.31 of them; at 8 x 5 fps it used 1.95 cores and dropped 7-17%. `USABLE_CPU_FRACTION` = 0.65
is that observation: a node stays clear of drops while it uses at most about two thirds of the box, the rest
being headroom for crowds (more boxes to track), re-identification bursts and the operating system. Every
other profile is an estimate whose `source` says where its figures come from.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Self, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vision_models.catalogue import read_catalogue
from vision_models.session import PROVIDERS

USABLE_CPU_FRACTION = 0.65
"""Share of a box's cores (or of its accelerator's time) a node may use and still drop no frames."""

BOXES_PACKAGE_DIR = "boxes"

ProviderName = Literal["cpu", "cuda", "tensorrt", "openvino", "coreml"]
assert set(get_args(ProviderName)) == set(PROVIDERS), "keep in step with vision_models.session.PROVIDERS"

OFFLOAD_PROVIDERS = frozenset({"cuda", "tensorrt", "coreml"})
"""Providers that move the detector off the CPU (OpenVINO's default device is the CPU itself)."""


class BoxProfileError(ValueError):
    """A box profile that cannot be used: unknown id, unreadable or invalid file (names file and key)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Offload(_Model):
    """The detector on the box's accelerator, through a CUDA, TensorRT or CoreML provider."""

    detector_ms_per_frame: float = Field(
        gt=0, le=10_000, description="Accelerator time per analysed frame, default detector, milliseconds."
    )
    cpu_ms_per_frame: float = Field(
        gt=0,
        le=10_000,
        description="The node's CPU per analysed frame without its detector (decode, tracking, outbox), ms.",
    )


class BoxProfile(_Model):
    """One kind of edge box. Figures are for the default detector (RTMDet-nano person, 544x416)."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Profile id, e.g. x86-8c.")]
    name: str = Field(min_length=1, max_length=120, description="What an installer buys.")
    cpu: str = Field(min_length=1, max_length=120, description="Processor, as its vendor names it.")
    cores: int = Field(ge=1, le=256, description="CPU cores (threads the node can use).")
    memory_gb: float = Field(gt=0, le=1024, description="Memory, GiB.")
    accelerator: str | None = Field(
        None, max_length=300, description="GPU/NPU, and whether the product can use it."
    )
    providers: list[ProviderName] = Field(
        min_length=1,
        description="ONNX Runtime execution providers in order of preference; CPU is always the fallback.",
    )
    cpu_ms_per_frame: float = Field(
        gt=0, le=10_000, description="Whole node's CPU per analysed frame with the detector on the CPU, ms."
    )
    offload: Offload | None = Field(
        None,
        description="Per-frame costs when the detector runs on the accelerator (CUDA, TensorRT, CoreML).",
    )
    measured: bool = Field(description="True only where the figures were measured on this box.")
    source: str = Field(
        min_length=20,
        max_length=2000,
        description="Where the figures come from: measurement, vendor, scaling.",
    )

    @model_validator(mode="after")
    def _providers(self) -> Self:
        if len(set(self.providers)) != len(self.providers):
            raise ValueError(f"providers lists a provider twice: {self.providers}")
        accelerated = [p for p in self.providers if p in OFFLOAD_PROVIDERS]
        if accelerated and self.offload is None:
            raise ValueError(f"providers {accelerated} need `offload` (per-frame costs on the accelerator)")
        if self.offload is not None and not accelerated:
            raise ValueError("offload is given but providers name no accelerator provider")
        return self

    def capacity_fps(self, provider: str = "cpu") -> float:
        """Frames per second (all cameras together) the box analyses in full with `provider`."""
        cpu_bound = self.cores * 1000.0 * USABLE_CPU_FRACTION / self.cpu_ms_per_frame
        if provider not in OFFLOAD_PROVIDERS or self.offload is None:
            return cpu_bound
        cpu_bound = self.cores * 1000.0 * USABLE_CPU_FRACTION / self.offload.cpu_ms_per_frame
        return min(cpu_bound, 1000.0 * USABLE_CPU_FRACTION / self.offload.detector_ms_per_frame)

    def cameras_at(self, fps: float, provider: str | None = None) -> int:
        """Cameras at `fps` each that one box serves (`provider`: the preferred one when None)."""
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        return math.floor(self.capacity_fps(provider or self.providers[0]) / fps + 1e-9)


@dataclass(frozen=True)
class ProviderChoice:
    """The execution provider a node uses on its box, and the preferred ones this machine lacks."""

    provider: str
    missing: tuple[str, ...]

    @property
    def fell_back(self) -> bool:
        return bool(self.missing)


def choose_provider(profile: BoxProfile, available: list[str] | None = None) -> ProviderChoice:
    """The profile's first provider that ONNX Runtime reports available (`available`: its class names,
    `onnxruntime.get_available_providers()` when None); CPU when none is."""
    if available is None:
        import onnxruntime as ort

        available = list(ort.get_available_providers())
    missing: list[str] = []
    for provider in profile.providers:
        if PROVIDERS[provider] in available:
            return ProviderChoice(provider, tuple(missing))
        missing.append(provider)
    return ProviderChoice("cpu", tuple(missing))


def _format_loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in loc).replace(".[", "[") or "(top)"


def parse_box(data: object, source: str) -> BoxProfile:
    """Validate one profile's data; `BoxProfileError` names `source`, each key and the reason."""
    try:
        return BoxProfile.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{source}: {_format_loc(tuple(e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
            + (f" (got {e['input']!r})" if e["type"] != "missing" else "")
            for e in exc.errors(include_url=False)
        ]
        raise BoxProfileError("\n".join(problems)) from exc


def load_box_file(path: str | Path) -> BoxProfile:
    """A box profile from a YAML file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BoxProfileError(f"{path}: cannot read a YAML box profile: {exc}") from exc
    return parse_box(data, str(path))


@functools.cache
def box_catalogue() -> dict[str, BoxProfile]:
    """Every shipped box profile, by id (read once)."""
    return read_catalogue("vision_models", BOXES_PACKAGE_DIR, parse_box, BoxProfileError)


def load_box(name: str) -> BoxProfile:
    """A shipped profile by id, or a profile file by path (a name ending in .yaml/.yml)."""
    if name.endswith((".yaml", ".yml")):
        return load_box_file(name)
    catalogue = box_catalogue()
    if name not in catalogue:
        raise BoxProfileError(f"unknown box profile {name!r}; known: {', '.join(catalogue)}")
    return catalogue[name]
