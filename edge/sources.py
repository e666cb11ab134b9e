"""Frame sources: what a camera hands to the node, one frame at a time.

A real camera yields images; the simulated showroom (`sim://...`) yields detections directly, with no
image at all, so the node skips the detector for it. Both go through the same `FrameSource` protocol.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from vision_models.detections import Detections


@dataclass(frozen=True)
class CameraFrame:
    """One frame of one camera.

    Attributes:
        camera_id: the camera's id from the node configuration.
        ts_utc: capture time (UTC, time-zone aware); analytics take their time from here, never the clock.
        index: frame number from the source's start (0-based), for MOT output and drop counting.
        image_bgr: uint8 array (H, W, 3), or None for sources that deliver detections.
        detections: person detections in image pixels, or None when the detector still has to run.
    """

    camera_id: str
    ts_utc: datetime
    index: int
    image_bgr: npt.NDArray[np.uint8] | None = None
    detections: Detections | None = None

    def __post_init__(self) -> None:
        if self.ts_utc.tzinfo is None:
            raise ValueError(f"camera {self.camera_id}: frame timestamp must be time-zone aware")
        if self.image_bgr is None and self.detections is None:
            raise ValueError(f"camera {self.camera_id}: a frame needs an image or detections")
        if self.image_bgr is not None and (self.image_bgr.ndim != 3 or self.image_bgr.shape[2] != 3):
            raise ValueError(
                f"camera {self.camera_id}: image must be (H, W, 3) BGR, got shape {self.image_bgr.shape}"
            )


@runtime_checkable
class FrameSource(Protocol):
    """A camera: opened, read frame by frame, closed. Implementations own reconnects and pacing."""

    camera_id: str

    def frames(self) -> Iterator[CameraFrame]:
        """Frames until the source ends (a file without loop) or `close()` is called."""
        ...

    def close(self) -> None: ...
