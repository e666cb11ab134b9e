"""Builders for edge tracking and analytics tests: a small showroom, synthetic tracks and detections.

The showroom: a 20 x 22 m floor seen by one top-down camera (1000 x 1100 pixels, 50 px per metre, box
centre on the floor), a door line along y = 20 from x = 8 to 12 (inside is y < 20), one display car with a
door area on its west side, a staff-only desk in the north-east corner and a dark-blue uniform.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.analytics.showroom import ShowroomAnalytics
from edge.config import NodeConfig, parse_config
from edge.events import Envelope, EventStamper, IdSource
from edge.tracking.base import TrackerStep, TrackState
from vision_models.arrays import XY
from vision_models.detections import Detections

T0 = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
PX_PER_M = 50.0
FPS = 5.0
END = "end"
"""Marker in a track's position list: the tracker gives up on the track at this step."""


def camera(cam_id: str = "cam-a", x0_m: float = 0.0, x1_m: float = 20.0) -> dict[str, Any]:
    """A top-down camera over floor x in [x0_m, x1_m], y in [0, 22], 50 px per metre."""
    w = round((x1_m - x0_m) * PX_PER_M)
    h = round(22 * PX_PER_M)
    return {
        "id": cam_id,
        "source": "sim://test",
        "fps": FPS,
        "resolution_wh": [w, h],
        "anchor": "center",
        "calibration": {
            "image_points_px": [[0, 0], [w, 0], [w, h], [0, h], [w / 2, h / 2]],
            "floor_points_m": [[x0_m, 0], [x1_m, 0], [x1_m, 22], [x0_m, 22], [(x0_m + x1_m) / 2, 11]],
        },
    }


def config_dict(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "store_id": "test-store",
        "node_id": "node-a",
        "timezone": "Asia/Shanghai",
        "floor": {"size_m": [20, 22]},
        "cameras": [camera()],
        "doors": [
            {"id": "main", "line_m": [[8, 20], [12, 20]], "inside_point_m": [10, 10], "hysteresis_m": 0.4}
        ],
        "cars": [
            {
                "id": "car-1",
                "model_name": "Test car",
                "browse_zone_m": [[2, 2], [10, 2], [10, 10], [2, 10]],
                "interior_zone_m": [[5, 5], [8, 5], [8, 7], [5, 7]],
                "door_areas_m": [[[4, 5.5], [5.2, 5.5], [5.2, 6.5], [4, 6.5]]],
            }
        ],
        "staff_areas": [{"id": "desk", "polygon_m": [[16, 1], [19, 1], [19, 4], [16, 4]]}],
        "staff_appearance": {
            "uniform_hsv": [110, 200, 120],
            "tolerance_hsv": [10, 60, 60],
            "min_observations": 3,
        },
    }
    data.update(overrides)
    return data


def make_config(**overrides: Any) -> NodeConfig:
    return parse_config(config_dict(**overrides))


def looks(seed: int) -> npt.NDArray[np.float64]:
    """A random unit appearance embedding (256-D, as the re-identification model's): one person's look."""
    v = np.random.default_rng(seed).normal(size=256)
    return np.asarray(v / np.linalg.norm(v), dtype=np.float64)


def stamper(seed: int = 0) -> EventStamper:
    return EventStamper("test-store", "node-a", IdSource(seed))


def line(a: XY, b: XY, seconds: float, fps: float = FPS) -> list[XY]:
    """Positions walking from a to b in `seconds` (b excluded), one per frame."""
    n = max(1, round(seconds * fps))
    return [(a[0] + (b[0] - a[0]) * k / n, a[1] + (b[1] - a[1]) * k / n) for k in range(n)]


def stay(p: XY, seconds: float, fps: float = FPS) -> list[XY]:
    return [p] * max(1, round(seconds * fps))


def hidden(seconds: float, fps: float = FPS) -> list[None]:
    return [None] * max(1, round(seconds * fps))


@dataclass
class Scene:
    """Drives `ShowroomAnalytics` with synthetic confirmed tracks, one step per frame."""

    config: NodeConfig = field(default_factory=make_config)
    seed: int = 0
    events: list[Envelope] = field(default_factory=list)
    occupancy: list[int] = field(default_factory=list)
    t: datetime = T0

    def __post_init__(self) -> None:
        self.analytics = ShowroomAnalytics(self.config, stamper(self.seed))
        self._first: dict[int, XY] = {}
        self._last: dict[int, tuple[XY, datetime]] = {}
        self._gone: set[int] = set()

    def play(
        self,
        tracks: dict[int, Sequence[XY | str | None]],
        uniform: dict[int, Sequence[bool]] | None = None,
        fps: float = FPS,
        appearance: dict[int, npt.NDArray[np.float64]] | None = None,
    ) -> list[Envelope]:
        """Each track's per-frame position (None: not observed; END: the tracker drops it), in lock step.

        `appearance`: a track's appearance embedding (re-identification), reported on every state."""
        n = max((len(v) for v in tracks.values()), default=0)
        first, last, gone = self._first, self._last, self._gone
        out: list[Envelope] = []
        for k in range(n):
            self.t += timedelta(seconds=1 / fps)
            states: list[TrackState] = []
            ended: list[int] = []
            for tid, positions in tracks.items():
                if tid in gone or k >= len(positions):
                    continue
                p = positions[k]
                if p == END:
                    gone.add(tid)
                    ended.append(tid)
                    continue
                if p is None:
                    if tid not in last:
                        continue
                    xy, seen = last[tid]
                    looks = (appearance or {}).get(tid)
                    states.append(TrackState(tid, xy, (0.0, 0.0), False, first[tid], seen, appearance=looks))
                    continue
                assert isinstance(p, tuple)
                first.setdefault(tid, p)
                last[tid] = (p, self.t)
                looks = (appearance or {}).get(tid)
                states.append(
                    TrackState(
                        tid, p, (0.0, 0.0), True, first[tid], self.t, {"cam-a": 0}, 0.9, appearance=looks
                    )
                )
            wearing = frozenset(
                tid
                for tid, votes in (uniform or {}).items()
                if k < len(votes) and votes[k] and tid not in gone
            )
            produced = self.analytics.step(self.t, TrackerStep(states, ended), wearing)
            out += produced
            self.occupancy.append(self.analytics.occupancy)
        self.events += out
        return out

    def flush(self) -> list[Envelope]:
        self.t += timedelta(seconds=1)
        out = self.analytics.flush(self.t)
        self.events += out
        return out

    def of_type(self, kind: str) -> list[Any]:
        return [e for e in self.events if getattr(e, "type", None) == kind]


def box_at(xy_m: XY, x0_m: float = 0.0, size_m: float = 0.6) -> list[float]:
    """A top-down person box centred on a floor point, in the test camera's pixels."""
    cx, cy = (xy_m[0] - x0_m) * PX_PER_M, xy_m[1] * PX_PER_M
    half = size_m * PX_PER_M / 2
    return [cx - half, cy - half, cx + half, cy + half]


def detections_at(
    points: Sequence[XY], resolution_wh: tuple[int, int] = (1000, 1100), x0_m: float = 0.0, score: float = 0.9
) -> Detections:
    boxes = np.array([box_at(p, x0_m) for p in points], dtype=np.float32).reshape(-1, 4)
    return Detections(boxes, np.full(len(points), score, np.float32), resolution_wh)
