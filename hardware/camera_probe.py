"""Commissioning's camera check: each camera opened with the node's own frame source and read for a short
window, all cameras at once, so a broken one costs its own item and not the others' time."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge.config import CameraConfig, NodeConfig, resolve_path
from edge.node.sources import open_source, source_kind

log = logging.getLogger(__name__)

FPS_PASS_RATIO = 0.9
"""Share of the target fps a camera must deliver (the node's "excellent" connection grade)."""
OPEN_GRACE_S = 12.0
"""How long past the window a camera may take to open or to give up (OpenCV's open and read timeouts)."""


@dataclass(frozen=True)
class CameraMeasure:
    """What one camera delivered over the window.

    Attributes:
        camera_id: the camera.
        frames: frames delivered.
        fps: measured frames per second (first to last frame); 0 with fewer than two frames.
        target_fps: the configured fps.
        resolution_wh: the size of the frames delivered, pixels; None without an image.
        first_image: one delivered BGR frame, uint8 (H, W, 3), for the inference check; None for
            simulated cameras (they deliver detections) or without frames.
        error: why the camera could not be read, None when it delivered.
    """

    camera_id: str
    frames: int
    fps: float
    target_fps: float
    resolution_wh: tuple[int, int] | None
    first_image: npt.NDArray[np.uint8] | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None and self.fps >= FPS_PASS_RATIO * self.target_fps


def with_resolved_sources(config: NodeConfig, config_path: Path) -> NodeConfig:
    """`config` with video-file sources resolved against the config file's folder, as the node does."""
    cameras = [
        cam.model_copy(
            update={"source": str(resolve_path(config_path, Path(cam.source.removeprefix("file:"))))}
        )
        if source_kind(cam.source) == "file"
        else cam
        for cam in config.cameras
    ]
    return config.model_copy(update={"cameras": cameras})


class _Probe(threading.Thread):
    def __init__(self, camera: CameraConfig, config: NodeConfig, seconds: float) -> None:
        super().__init__(name=f"commission-{camera.id}", daemon=True)
        self.camera = camera
        self.config = config
        self.seconds = seconds
        self.times: list[float] = []
        self.image: npt.NDArray[np.uint8] | None = None
        self.resolution_wh: tuple[int, int] | None = None
        self.error: str | None = None

    def run(self) -> None:
        try:
            source = open_source(self.camera, self.config, realtime=True)
        except Exception as exc:  # any camera problem is this camera's item, never the run's
            self.error = str(exc) or type(exc).__name__
            return
        frames = iter(source.frames())
        deadline = None
        try:
            for frame in frames:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.seconds  # the window starts at the first frame, not the open
                self.times.append(now)
                if frame.image_bgr is not None:
                    if self.image is None:
                        self.image = frame.image_bgr
                    self.resolution_wh = (frame.image_bgr.shape[1], frame.image_bgr.shape[0])
                if now >= deadline:
                    break
        except Exception as exc:
            self.error = str(exc) or type(exc).__name__
        finally:
            source.close()
            close = getattr(frames, "close", None)
            if close is not None:
                close()  # a generator: runs its own clean-up (releases the capture)


def measure_cameras(config: NodeConfig, seconds: float) -> list[CameraMeasure]:
    """Read every camera of `config` (sources already resolved) for `seconds`, all at once."""
    probes = [_Probe(cam, config, seconds) for cam in config.cameras]
    for probe in probes:
        probe.start()
    deadline = time.monotonic() + seconds + OPEN_GRACE_S
    for probe in probes:
        probe.join(max(0.0, deadline - time.monotonic()))
    return [_measure_of(probe, seconds) for probe in probes]


def _measure_of(probe: _Probe, seconds: float) -> CameraMeasure:
    times = list(probe.times)
    error = probe.error
    if probe.is_alive() and not times:
        error = f"no frame within {seconds + OPEN_GRACE_S:g} s of opening"
    elif error is None and not times:
        error = "the source opened but delivered no frame"
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    fps = (len(times) - 1) / span if span > 0 else 0.0
    return CameraMeasure(
        camera_id=probe.camera.id,
        frames=len(times),
        fps=round(fps, 2),
        target_fps=probe.camera.fps,
        resolution_wh=probe.resolution_wh,
        first_image=probe.image,
        error=error,
    )
