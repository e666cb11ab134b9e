"""Per camera, whether what the analytics see still makes trustworthy counts: reported, never silent.

A camera can deliver frames on time (its connection `state` is `ok`) and still count nothing right:
- `no_detections`: its detector has returned no one for `SILENT_AFTER_S` of its frames (a model that
  fails, a lens covered by something featureless, a view nobody walks through: worth a look either way);
- `off_floor`: most of its boxes in the last `WINDOW_S` land off the floor plan (a calibration that puts
  people tens of metres away, a camera turned to the street);
- `over_capacity`: people in its view started no track because the node's tracker was at capacity
  (`TrackerConfig.max_tracks`, a crowd).

Time is the frames' time (`ts_utc` of each step), so a replay reports the same; what is kept per camera is
a few counters per `BIN_S` over the last `WINDOW_S`: bounded however long the node runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from edge.events import Degradation

SILENT_AFTER_S = 300.0
"""A camera whose frames have shown no person for this long is reported (`no_detections`)."""
WINDOW_S = 60.0
"""Off-floor shares and untracked people are judged over this much of the latest frames."""
BIN_S = 10.0
"""Counters are kept per bin of this many seconds (WINDOW_S / BIN_S bins per camera)."""
OFF_FLOOR_SHARE = 0.5
"""At least this share of a camera's boxes off the floor plan in the window is `off_floor`..."""
OFF_FLOOR_MIN_BOXES = 20
"""...once the window holds at least this many boxes (a passer-by outside a door is not a fault)."""


@dataclass(frozen=True)
class CameraDegradation:
    """One camera's view health, as the heartbeat carries it (`edge.events.CameraHealth`)."""

    camera_id: str
    degraded: tuple[Degradation, ...]
    no_detections_s: float | None
    off_floor_share: float | None
    untracked: int

    @property
    def detail(self) -> str:
        """What is wrong, in words ('' when nothing is)."""
        words = {
            "no_detections": f"no detections for {self.no_detections_s or 0:.0f} s",
            "off_floor": f"{100 * (self.off_floor_share or 0):.0f}% of detections off the floor plan",
            "over_capacity": f"up to {self.untracked} people in view untracked: crowd above tracker capacity",
        }
        return "; ".join(words[d] for d in self.degraded)


@dataclass
class _Bin:
    start_s: float
    on_floor: int = 0
    off_floor: int = 0
    untracked: int = 0


@dataclass
class _Camera:
    first_utc: datetime
    last_utc: datetime
    last_person_utc: datetime | None = None
    bins: deque[_Bin] = field(default_factory=deque)


class ViewWatch:
    """Watches each camera's detections at every step; `report()` says which cameras' counts degrade."""

    def __init__(self, camera_ids: Iterable[str]) -> None:
        self._camera_ids = sorted(camera_ids)
        self._cameras: dict[str, _Camera] = {}
        self._t0: datetime | None = None

    def observe(
        self, ts_utc: datetime, camera_id: str, *, boxes: int, on_floor: int, off_floor: int, untracked: int
    ) -> None:
        """One camera's step: `boxes` the detector returned, how many landed `on_floor` and `off_floor`,
        and how many of them started no track for want of capacity (`untracked`: people nothing follows)."""
        if camera_id not in self._camera_ids:
            return  # a camera the configuration does not know: counted by the pipeline, not watched
        if self._t0 is None:
            self._t0 = ts_utc
        cam = self._cameras.get(camera_id)
        if cam is None:
            cam = self._cameras[camera_id] = _Camera(ts_utc, ts_utc)
        cam.last_utc = ts_utc
        if boxes:
            cam.last_person_utc = ts_utc
        t_s = (ts_utc - self._t0).total_seconds()
        start_s = t_s - t_s % BIN_S
        if not cam.bins or cam.bins[-1].start_s != start_s:
            cam.bins.append(_Bin(start_s))
        while cam.bins and cam.bins[0].start_s <= t_s - WINDOW_S:
            cam.bins.popleft()
        current = cam.bins[-1]
        current.on_floor += on_floor
        current.off_floor += off_floor
        current.untracked = max(current.untracked, untracked)

    def report(self) -> dict[str, CameraDegradation]:
        """Every configured camera's degradation as of its latest frame (cameras not analysed yet: none)."""
        return {cid: self._camera(cid) for cid in self._camera_ids}

    def _camera(self, camera_id: str) -> CameraDegradation:
        cam = self._cameras.get(camera_id)
        if cam is None:
            return CameraDegradation(camera_id, (), None, None, 0)
        since = cam.last_person_utc or cam.first_utc
        silent_s = (cam.last_utc - since).total_seconds()
        on = sum(b.on_floor for b in cam.bins)
        off = sum(b.off_floor for b in cam.bins)
        untracked = max((b.untracked for b in cam.bins), default=0)
        share = off / (on + off) if on + off else None
        degraded: list[Degradation] = []
        if silent_s >= SILENT_AFTER_S:
            degraded.append("no_detections")
        if share is not None and on + off >= OFF_FLOOR_MIN_BOXES and share >= OFF_FLOOR_SHARE:
            degraded.append("off_floor")
        if untracked:
            degraded.append("over_capacity")
        return CameraDegradation(
            camera_id,
            tuple(degraded),
            round(silent_s, 1),
            None if share is None else round(share, 4),
            untracked,
        )
