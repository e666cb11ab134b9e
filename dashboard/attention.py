"""What an installer should look at first: each node's problems, worst first. Pure: values in, issues out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from aggregator.queries import CameraState

Severity = Literal["critical", "warning"]
SEVERITY_RANK: dict[str, int] = {"critical": 2, "warning": 1, "ok": 0}

HEARTBEAT_EVERY_S = 30.0
STALE_HEARTBEAT_S = 3 * HEARTBEAT_EVERY_S  # three missed heartbeats
LOW_FPS_RATIO = 0.8
BACKLOG_WARNING = 1_000
CALIBRATION_MAX_ERROR_M = 0.3  # NodeConfig's default `calibration.max_error_m`


@dataclass(frozen=True)
class Issue:
    """One problem; `key` is an i18n key (`inst.issue.*`) and `values` fill its placeholders."""

    severity: Severity
    key: str
    values: Mapping[str, object] = field(default_factory=dict)


def node_issues(
    *,
    online: bool | None,
    heartbeat_age_s: float | None,
    cameras: Sequence[CameraState],
    outbox_depth: int | None,
    seq_missing: int,
    calibration_error_m: Mapping[str, float],
    calibration_max_error_m: float = CALIBRATION_MAX_ERROR_M,
) -> list[Issue]:
    """Problems of one node, most severe first."""
    issues: list[Issue] = []
    if online is False:
        issues.append(Issue("critical", "inst.issue.offline"))
    if heartbeat_age_s is not None and heartbeat_age_s > STALE_HEARTBEAT_S:
        issues.append(Issue("critical", "inst.issue.no_heartbeat", {"minutes": int(heartbeat_age_s // 60)}))
    for cam in cameras:
        if cam.state != "ok":
            issues.append(
                Issue("critical", "inst.issue.camera_down", {"camera": cam.camera_id, "state": cam.state})
            )
            continue
        if cam.quality in ("poor", "unusable"):
            severity: Severity = "critical" if cam.quality == "unusable" else "warning"
            issues.append(
                Issue(severity, "inst.issue.quality", {"camera": cam.camera_id, "quality": cam.quality})
            )
        if cam.target_fps > 0 and cam.fps < LOW_FPS_RATIO * cam.target_fps:
            issues.append(
                Issue(
                    "warning",
                    "inst.issue.low_fps",
                    {"camera": cam.camera_id, "fps": f"{cam.fps:.1f}", "target": f"{cam.target_fps:g}"},
                )
            )
    if outbox_depth is not None and outbox_depth >= BACKLOG_WARNING:
        issues.append(Issue("warning", "inst.issue.backlog", {"depth": outbox_depth}))
    if seq_missing > 0:
        issues.append(Issue("warning", "inst.issue.gaps", {"gaps": seq_missing}))
    for camera_id, error_m in sorted(calibration_error_m.items()):
        if error_m > calibration_max_error_m:
            issues.append(
                Issue("warning", "inst.issue.calibration", {"camera": camera_id, "error": f"{error_m:.2f}"})
            )
    issues.sort(key=lambda i: -SEVERITY_RANK[i.severity])
    return issues


def worst(issues: Sequence[Issue]) -> str:
    """'critical', 'warning' or 'ok'."""
    return max((i.severity for i in issues), key=SEVERITY_RANK.__getitem__, default="ok")
