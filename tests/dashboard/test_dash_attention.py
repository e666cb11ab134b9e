"""What the installer view puts first: node problems and their severity; figure formatting."""

from __future__ import annotations

import math

from dashboard.attention import CameraState, node_issues, worst
from dashboard.format import change, pct, seconds


def _cam(camera_id: str = "cam-a", **kw: object) -> CameraState:
    base: dict[str, object] = {
        "state": "ok",
        "fps": 5.0,
        "target_fps": 5.0,
        "inference_ms": 40.0,
        "quality": "excellent",
    }
    base.update(kw)
    return CameraState(camera_id=camera_id, **base)  # type: ignore[arg-type]


def _issues(**kw: object) -> list[str]:
    args: dict[str, object] = {
        "online": True,
        "heartbeat_age_s": 10.0,
        "cameras": [_cam()],
        "outbox_depth": 0,
        "seq_missing": 0,
        "calibration_error_m": {"cam-a": 0.05},
    }
    args.update(kw)
    return [i.key for i in node_issues(**args)]  # type: ignore[arg-type]


def test_healthy_node_has_no_issue() -> None:
    assert _issues() == []
    assert (
        worst(
            node_issues(
                online=True,
                heartbeat_age_s=5,
                cameras=[],
                outbox_depth=0,
                seq_missing=0,
                calibration_error_m={},
            )
        )
        == "ok"
    )


def test_each_problem_is_reported() -> None:
    assert _issues(online=False) == ["inst.issue.offline"]
    assert _issues(heartbeat_age_s=600.0) == ["inst.issue.no_heartbeat"]
    assert _issues(cameras=[_cam(state="stalled")]) == ["inst.issue.camera_down"]
    assert _issues(cameras=[_cam(fps=3.0)]) == ["inst.issue.low_fps"]
    assert _issues(cameras=[_cam(fps=4.5)]) == []
    assert _issues(cameras=[_cam(quality="poor")]) == ["inst.issue.quality"]
    assert _issues(outbox_depth=5000) == ["inst.issue.backlog"]
    assert _issues(seq_missing=3) == ["inst.issue.gaps"]
    assert _issues(calibration_error_m={"cam-a": 0.45}) == ["inst.issue.calibration"]


def test_critical_before_warning() -> None:
    issues = node_issues(
        online=False,
        heartbeat_age_s=None,
        cameras=[_cam(fps=1.0)],
        outbox_depth=0,
        seq_missing=2,
        calibration_error_m={},
    )
    assert [i.severity for i in issues] == ["critical", "warning", "warning"]
    assert worst(issues) == "critical"


def test_domain_example_formatting() -> None:
    # DOMAIN.md: 59 visitors, 46 browsers, 11 entrants after 35, 33, 7.
    assert pct(46 / 59) == "77.97%"
    assert pct(11 / 46) == "23.91%"
    assert change((59 - 35) / 35) == "+68.57%"
    assert change((46 - 33) / 33) == "+39.39%"
    assert change((11 - 7) / 7) == "+57.14%"
    assert change(-0.5) == "-50.00%"
    assert change(None) is None and change(math.inf) is None
    assert pct(None) == "–"
    assert seconds(45) == "45 s" and seconds(725) == "12 min 5 s" and seconds(3780) == "1 h 3 min"
