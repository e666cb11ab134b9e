"""What an installer should look at first: each node's problems, worst first. Pure: values in, issues out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from aggregator.queries import CameraState

Severity = Literal["critical", "warning"]
SEVERITY_RANK: dict[str, int] = {"critical": 2, "warning": 1, "ok": 0}

HEARTBEAT_EVERY_S = 30.0
# One heartbeat missed (with 15 s for the network and the aggregator): the node stopped reporting.
STALE_HEARTBEAT_S = HEARTBEAT_EVERY_S + 15.0
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
    """Problems of one node, most severe first.

    A node that is offline (its last will) or whose last heartbeat is older than `STALE_HEARTBEAT_S` has
    stopped reporting: that is said with the heartbeat's age (`age_s`, seconds, or None when it never sent
    one), and its cameras' last states are reported as stale rather than judged (they are old news)."""
    issues: list[Issue] = []
    stale = heartbeat_age_s is not None and heartbeat_age_s > STALE_HEARTBEAT_S
    if online is False and heartbeat_age_s is None:
        issues.append(Issue("critical", "inst.issue.offline_silent"))
    elif online is False:
        issues.append(Issue("critical", "inst.issue.offline", {"age_s": heartbeat_age_s}))
    elif stale:
        issues.append(Issue("critical", "inst.issue.stale", {"age_s": heartbeat_age_s}))
    if (online is False or stale) and cameras:
        names = ", ".join(c.camera_id for c in cameras)
        issues.append(
            Issue("warning", "inst.issue.cameras_stale", {"cameras": names, "age_s": heartbeat_age_s})
        )
        cameras = ()
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


def reporting(online: bool | None, heartbeat_age_s: float | None) -> bool:
    """Whether a node is reporting now: not offline, and a heartbeat within `STALE_HEARTBEAT_S`."""
    return online is not False and heartbeat_age_s is not None and heartbeat_age_s <= STALE_HEARTBEAT_S


def worst(issues: Sequence[Issue]) -> str:
    """'critical', 'warning' or 'ok'."""
    return max((i.severity for i in issues), key=SEVERITY_RANK.__getitem__, default="ok")
