"""The heartbeat: node and camera health every 30 s, as a contract `Heartbeat` through the outbox.

Per camera: delivered fps, inference ms, dropped frames, reconnects, state and connection quality (from
`CameraMonitor`), and whether what it sees still makes trustworthy counts (`edge.degradation`: no detections
for minutes, people off the floor plan, a crowd above the tracker's capacity). Per node: outbox depth, oldest
unsent age and evictions, the writes a full disk refused and the payloads held in memory meanwhile
(`edge.node.outbox_writer`), CPU and memory of this process, temperature where the board exposes one, model id
and checksum, software version, uptime and the clock's offset from its time source where chrony reports it.
Readings that a machine does not offer are sent as null, never guessed.
"""

from __future__ import annotations

import logging
import resource
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from edge import __version__
from edge.degradation import CameraDegradation
from edge.events import CameraHealth, EventStamper, HandoverHealth, Heartbeat
from edge.node.outbox import OutboxStats
from edge.node.sources import CameraSnapshot

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 30.0


@dataclass(frozen=True)
class ModelInfo:
    model_id: str
    sha256: str | None


class NodeVitals:
    """Process CPU and memory, board temperature and clock offset, read from the OS without extra packages."""

    def __init__(self, thermal_root: Path = Path("/sys/class/thermal")) -> None:
        self._thermal_root = thermal_root
        self._last_cpu_s = self._cpu_s()
        self._last_wall = time.monotonic()

    @staticmethod
    def _cpu_s() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def cpu_percent(self) -> float:
        """CPU used by this process since the previous call, in percent of one core (200 = two cores busy)."""
        cpu, wall = self._cpu_s(), time.monotonic()
        elapsed = wall - self._last_wall
        percent = 100.0 * (cpu - self._last_cpu_s) / elapsed if elapsed > 0 else 0.0
        self._last_cpu_s, self._last_wall = cpu, wall
        return round(max(0.0, percent), 1)

    @staticmethod
    def memory_mb() -> float | None:
        """Resident memory of this process (VmRSS), MB; None where /proc is not available."""
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            return None
        return None

    def temperature_c(self) -> float | None:
        """The hottest thermal zone the kernel reports, °C; None on machines without one."""
        readings = []
        for zone in sorted(self._thermal_root.glob("thermal_zone*/temp")):
            try:
                readings.append(int(zone.read_text().strip()) / 1000.0)
            except (OSError, ValueError):
                continue
        plausible = [t for t in readings if -50 <= t <= 150]
        return round(max(plausible), 1) if plausible else None

    @staticmethod
    def clock_offset_s() -> float | None:
        """This clock's offset from its NTP source as chrony measures it; None without chrony."""
        chronyc = shutil.which("chronyc")
        if chronyc is None:
            return None
        try:
            out = subprocess.run(
                [chronyc, "-c", "tracking"], capture_output=True, text=True, timeout=2, check=True
            ).stdout
            # CSV: ref id, ref name, stratum, ref time, system time offset (s, + = fast), ...
            return round(float(out.split(",")[4]), 6)
        except (OSError, subprocess.SubprocessError, IndexError, ValueError):
            return None


def camera_health(snapshot: CameraSnapshot, degradation: CameraDegradation | None = None) -> CameraHealth:
    """The camera's health: its connection (`snapshot`) and, when the analytics watch it, its view."""
    view = degradation or CameraDegradation(snapshot.camera_id, (), None, None, 0)
    return CameraHealth(
        camera_id=snapshot.camera_id,
        state=snapshot.state,
        fps=snapshot.fps,
        target_fps=snapshot.target_fps,
        inference_ms=min(snapshot.inference_ms, 60_000.0),
        dropped_frames=snapshot.dropped_frames,
        reconnects=snapshot.reconnects,
        quality=snapshot.quality,
        detail=snapshot.detail or view.detail[:200] or None,
        degraded=list(view.degraded),
        no_detections_s=view.no_detections_s,
        off_floor_share=view.off_floor_share,
        untracked=view.untracked,
    )


def build_heartbeat(
    stamper: EventStamper,
    ts_utc: datetime,
    *,
    cameras: Iterable[CameraSnapshot],
    outbox: OutboxStats,
    oldest_unsent_age_s: float | None,
    model: ModelInfo,
    uptime_s: float,
    vitals: NodeVitals,
    calibration_error_m: Mapping[str, float] | None = None,
    degradation: Mapping[str, CameraDegradation] | None = None,
    handover: HandoverHealth | None = None,
    write_failures: int = 0,
    held: int = 0,
) -> Heartbeat:
    """A stamped `Heartbeat` (it takes the next seq like any outbox payload); `degradation`: per camera id,
    what the analytics make of its view (`EdgePipeline.degradation`); `write_failures` and `held`: the
    `OutboxWriter`'s refused writes since start and payloads held in memory now."""
    views = degradation or {}
    return stamper.stamp(
        Heartbeat,
        ts_utc,
        cameras=[camera_health(s, views.get(s.camera_id)) for s in cameras],
        outbox_depth=outbox.depth,
        oldest_unsent_age_s=oldest_unsent_age_s,
        outbox_evicted=outbox.evicted_total,
        outbox_write_failures=write_failures,
        outbox_held=held,
        model_id=model.model_id[:100],
        model_sha256=model.sha256,
        software_version=__version__,
        uptime_s=uptime_s,
        cpu_percent=vitals.cpu_percent(),
        memory_mb=vitals.memory_mb(),
        temperature_c=vitals.temperature_c(),
        clock_offset_s=vitals.clock_offset_s(),
        calibration_error_m={k: round(float(v), 4) for k, v in (calibration_error_m or {}).items()},
        handover=handover,
    )
