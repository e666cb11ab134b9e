"""Pure parts of the dashboard: node attention rules, figure formatting, chart data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aggregator.queries import CameraState
from dashboard.attention import node_issues, worst
from dashboard.charts import heat_cells, radar_chart
from dashboard.format import change, pct, seconds


def _cam(camera_id: str = "cam-a", **kw: object) -> CameraState:
    base: dict[str, object] = {
        "state": "ok",
        "fps": 5.0,
        "target_fps": 5.0,
        "inference_ms": 40.0,
        "dropped_frames": 0,
        "reconnects": 0,
        "quality": "excellent",
        "detail": None,
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


def test_heat_cells_merge_large_grids_and_keep_the_total() -> None:
    rng = np.random.default_rng(3)
    grid = rng.gamma(1.0, 1.0, size=(96, 144)) * (rng.random((96, 144)) > 0.3)
    rows, edge = heat_cells(grid, 0.25, max_cells=4000)
    assert edge == 0.5 and len(rows) <= 4000
    assert sum(r["person_s"] for r in rows) == pytest.approx(grid.sum(), rel=1e-3)
    small = np.zeros((8, 8))
    small[2, 5] = 30.0
    rows, edge = heat_cells(small, 0.25)
    assert edge == 0.25
    assert rows == [{"x": 1.25, "x2": 1.5, "y": 0.5, "y2": 0.75, "person_s": 30.0}]


def test_radar_puts_brand_top_at_100() -> None:
    spec = radar_chart(
        ["a", "b", "c"], [("top", [100, 100, 100], "#000"), ("store", [50, 100, 0], "#111")]
    ).to_dict()
    lines = spec["layer"][-1]["data"]["values"]
    store = [r for r in lines if r["series"] == "store"]
    assert [r["score"] for r in store] == [50.0, 100.0, 0.0, 50.0]  # closed polygon
    assert store[0]["x"] == pytest.approx(0.0) and store[0]["y"] == pytest.approx(50.0)
