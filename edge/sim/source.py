"""`sim://` camera sources: the node's real pipeline fed with detections from the simulated showroom.

URL form: `sim://SCENARIO[?seed=N]`, e.g. `sim://demo?seed=1` or `sim://saturday-peak?seed=7`. All of a
node's cameras naming the same scenario and seed share one simulated showroom (one `SimulatedNode`), so
they see the same people from their own angles. Frames carry detections and no image.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import numpy as np
import numpy.typing as npt
from shapely import contains_xy
from shapely.geometry.base import BaseGeometry

from edge.config import CameraConfig, NodeConfig
from edge.sim.appearance import SimAppearance
from edge.sim.camera import SimCamera
from edge.sim.scenarios import Scenario, get_scenario
from edge.sim.simulation import Samples, Simulation
from edge.sim.world import Vec
from edge.sources import CameraFrame, FrameSource
from vision_models.detections import Detections

log = logging.getLogger(__name__)


class SimUrlError(ValueError):
    """A `sim://` URL that cannot be used; the message says what is wrong and the expected form."""


@dataclass(frozen=True)
class SimUrl:
    scenario: str
    seed: int

    @classmethod
    def parse(cls, url: str) -> SimUrl:
        parts = urlsplit(url)
        if parts.scheme != "sim":
            raise SimUrlError(f"{url!r} is not a sim:// URL (expected sim://SCENARIO?seed=N)")
        name = (parts.netloc + parts.path).strip("/") or "demo"
        query = parse_qs(parts.query)
        unknown = sorted(set(query) - {"seed"})
        if unknown:
            raise SimUrlError(f"{url!r}: unknown parameter(s) {', '.join(unknown)} (known: seed)")
        try:
            seed = int(query.get("seed", ["0"])[0])
        except ValueError:
            raise SimUrlError(f"{url!r}: seed must be an integer, got {query['seed'][0]!r}") from None
        try:
            get_scenario(name)
        except KeyError as exc:
            raise SimUrlError(f"{url!r}: {exc}") from None
        return cls(name, seed)


def person_heights_m(pid: npt.NDArray[np.int64]) -> Vec:
    """A stable height (1.1-1.95 m) per person index, so a person's boxes keep their size."""
    frac = (pid.astype(np.float64) * 0.6180339887) % 1.0
    return np.where(frac < 0.08, 1.1 + frac * 2.5, 1.55 + 0.4 * frac)


class SimulatedNode:
    """One node's cameras over one simulated showroom.

    Args:
        config: the node configuration (its cameras must be calibrated).
        scenario: what happens on the floor.
        seed: fixes people and camera faults.
        start_utc: instant of simulation time 0 (default: the scenario's start).
    """

    def __init__(
        self,
        config: NodeConfig,
        scenario: Scenario,
        seed: int,
        start_utc: datetime | None = None,
        *,
        shared: Simulation | None = None,
        view_m: BaseGeometry | None = None,
        box_index: int = 0,
    ) -> None:
        self.config = config
        self.scenario = scenario
        self.sim = shared if shared is not None else Simulation(config, scenario, seed, start_utc)
        self.view_m = view_m
        """A store of several boxes: the part of the floor this box's cameras look at (None: all of it)."""
        appearance = SimAppearance(scenario.noise, seed) if config.tracker.reid is not None else None
        salt = [box_index] if box_index else []
        self.cameras = {
            cam.id: SimCamera(
                cam,
                self.sim.world,
                scenario.noise,
                np.random.default_rng([seed, 7919, i, *salt]),
                appearance,
                np.random.default_rng([seed, 7927, i, *salt]),
            )
            for i, cam in enumerate(config.cameras)
        }
        self._index = {cam.id: i for i, cam in enumerate(config.cameras)}
        self._lock = threading.Lock()

    @property
    def start_utc(self) -> datetime:
        return self.sim.start_utc

    def camera_down(self, camera_id: str, t_s: float) -> bool:
        return self.scenario.camera_down(self._index[camera_id], t_s)

    def detector_blind(self, camera_id: str, t_s: float) -> bool:
        return self.scenario.detector_blind(self._index[camera_id], t_s)

    def detect(self, camera_id: str, t_s: float) -> Detections:
        """Detections of camera `camera_id` at simulation time `t_s`."""
        with self._lock:
            samples = self.sim.samples(t_s, 1, 1.0)
            return self._detect_rows(camera_id, samples, slice(None), t_s)

    def batches(
        self, fps: float, end_s: float, chunk_frames: int = 600
    ) -> Iterator[tuple[float, dict[str, Detections]]]:
        """(t_s, {camera id: detections}) every 1/fps s from 0 to `end_s`; cameras in an outage left out."""
        dt = 1.0 / fps
        total = int(np.floor(end_s / dt)) + 1
        for first in range(0, total, chunk_frames):
            n = min(chunk_frames, total - first)
            samples = self.sim.samples(first * dt, n, dt)
            bounds = samples.bounds()
            for k in range(n):
                t_s = (first + k) * dt
                rows = slice(int(bounds[k]), int(bounds[k + 1]))
                yield (
                    t_s,
                    {
                        cam_id: self._detect_rows(cam_id, samples, rows, t_s)
                        for cam_id in self.cameras
                        if not self.camera_down(cam_id, t_s)
                    },
                )

    def _detect_rows(self, camera_id: str, samples: Samples, rows: slice, t_s: float) -> Detections:
        pid = samples.pid[rows]
        xy_m, seated, staff = samples.xy_m[rows], samples.seated[rows], samples.staff[rows]
        if self.view_m is not None:
            seen = contains_xy(self.view_m, xy_m[:, 0], xy_m[:, 1])
            pid, xy_m, seated, staff = pid[seen], xy_m[seen], seated[seen], staff[seen]
        found = self.cameras[camera_id].detect(xy_m, seated, person_heights_m(pid), pid, staff)
        if self.detector_blind(camera_id, t_s):
            # Drawn all the same, so the camera's faults after the outage are those of a run without it.
            return Detections.empty(found.resolution_wh)
        return found


_nodes: dict[tuple[str, str, str, int, str], SimulatedNode] = {}
_nodes_lock = threading.Lock()


def shared_node(config: NodeConfig, url: SimUrl, start_utc: datetime | None, realtime: bool) -> SimulatedNode:
    """The node's simulated showroom for this scenario and seed, built once and shared by its cameras."""
    scenario = get_scenario(url.scenario)
    when = start_utc.isoformat() if start_utc is not None else ("live" if realtime else "scenario")
    key = (config.store_id, config.node_id, url.scenario, url.seed, when)
    with _nodes_lock:
        node = _nodes.get(key)
        if node is None:
            if start_utc is None and realtime:
                start_utc = datetime.now(UTC)
            node = SimulatedNode(config, scenario, url.seed, start_utc)
            _nodes[key] = node
        return node


class SimSource:
    """A `FrameSource` for one simulated camera.

    Realtime sources pace frames to the wall clock (simulation time 0 = `start_utc`); others run as fast
    as they are read. Finite scenarios end 30 s after the last visitor left. A camera in an outage window
    delivers nothing during it (the node sees a stalled stream).
    """

    def __init__(self, camera: CameraConfig, node: SimulatedNode, *, realtime: bool) -> None:
        self.camera_id = camera.id
        self.fps = camera.fps
        self.node = node
        self.realtime = realtime
        self._closed = threading.Event()
        self.dropped_frames = 0

    def frames(self) -> Iterator[CameraFrame]:
        dt = 1.0 / self.fps
        end_s = None if self.node.scenario.endless else self.node.sim.finish()
        start = self.node.start_utc
        index = 0
        if self.realtime:
            # Join the simulated clock where the wall clock is now.
            behind = (datetime.now(UTC) - start).total_seconds()
            index = max(0, int(behind / dt))
        while not self._closed.is_set():
            t_s = index * dt
            if end_s is not None and t_s > end_s:
                return
            if self.realtime:
                wait = (start + timedelta(seconds=t_s) - datetime.now(UTC)).total_seconds()
                if wait > 0:
                    if self._closed.wait(wait):
                        return
                elif wait < -2 * dt:
                    skipped = int(-wait / dt)
                    self.dropped_frames += skipped
                    index += skipped
                    continue
            if not self.node.camera_down(self.camera_id, t_s):
                detections = self.node.detect(self.camera_id, t_s)
                yield CameraFrame(
                    self.camera_id, start + timedelta(seconds=t_s), index, detections=detections
                )
            index += 1

    def close(self) -> None:
        self._closed.set()


def open_sim_source(
    url: str,
    camera: CameraConfig,
    *,
    config: NodeConfig,
    start_utc: datetime | None = None,
    realtime: bool = True,
) -> FrameSource:
    """Open camera `camera` of node `config` on the simulated showroom named by `url` (`sim://...`)."""
    parsed = SimUrl.parse(url)
    if camera.id not in {c.id for c in config.cameras}:
        raise SimUrlError(f"camera {camera.id!r} is not one of node {config.node_id!r}'s cameras")
    node = shared_node(config, parsed, start_utc, realtime)
    log.info(
        "sim camera %s: scenario %s, seed %d, t0 %s", camera.id, parsed.scenario, parsed.seed, node.start_utc
    )
    return SimSource(camera, node, realtime=realtime)


__all__ = [
    "SimSource",
    "SimUrl",
    "SimUrlError",
    "SimulatedNode",
    "open_sim_source",
    "person_heights_m",
    "shared_node",
]
