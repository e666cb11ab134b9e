"""Pure parts of the dashboard: node attention rules, figure formatting, chart data."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import cv2
import numpy as np
import pytest

from aggregator.queries import CameraState
from dashboard import format as fmt
from dashboard.attention import HEARTBEAT_EVERY_S, STALE_HEARTBEAT_S, node_issues, reporting, worst
from dashboard.charts import (
    HEAT_COLOURS,
    HEAT_PX_PER_CELL_MAX,
    CarOutline,
    heat_raster,
    heatmap_spec,
    radar_chart,
    radar_rings,
    to_svg,
)
from dashboard.format import change, pct, seconds
from dashboard.heat import CLIP_PERCENTILE, floor_heat, zone_mask, zone_seconds


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
    assert _issues(online=False) == ["inst.issue.offline", "inst.issue.cameras_stale"]
    assert _issues(online=False, heartbeat_age_s=None, cameras=[]) == ["inst.issue.offline_silent"]
    assert _issues(heartbeat_age_s=600.0) == ["inst.issue.stale", "inst.issue.cameras_stale"]
    assert _issues(cameras=[_cam(state="stalled")]) == ["inst.issue.camera_down"]
    assert _issues(cameras=[_cam(fps=3.0)]) == ["inst.issue.low_fps"]
    assert _issues(cameras=[_cam(fps=4.5)]) == []
    assert _issues(cameras=[_cam(quality="poor")]) == ["inst.issue.quality"]
    assert _issues(outbox_depth=5000) == ["inst.issue.backlog"]
    assert _issues(seq_missing=3) == ["inst.issue.gaps"]
    assert _issues(calibration_error_m={"cam-a": 0.45}) == ["inst.issue.calibration"]


def test_a_node_that_stopped_reporting_is_stale_after_one_missed_heartbeat() -> None:
    assert _issues(heartbeat_age_s=HEARTBEAT_EVERY_S + 10) == []
    assert _issues(heartbeat_age_s=STALE_HEARTBEAT_S + 1)[0] == "inst.issue.stale"
    # Its cameras' last states are old news: not judged ("ok", "excellent"), reported stale with the age.
    issues = node_issues(
        online=True,
        heartbeat_age_s=75.0,
        cameras=[_cam(), _cam(camera_id="cam-b", fps=0.5)],
        outbox_depth=0,
        seq_missing=0,
        calibration_error_m={},
    )
    assert [i.key for i in issues] == ["inst.issue.stale", "inst.issue.cameras_stale"]
    assert issues[1].values == {"cameras": "cam-a, cam-b", "age_s": 75.0}
    assert not reporting(True, 75.0) and not reporting(False, 5.0) and reporting(True, 5.0)


def test_durations_in_both_languages() -> None:
    assert seconds(45) == "45 s" and seconds(45, "zh") == "45秒"
    assert seconds(291) == "4 min 51 s" and seconds(291, "zh") == "4分51秒"
    assert seconds(3 * 3600 + 60, "zh") == "3小时1分"
    assert seconds(3 * 86400 + 7200) == "3 d 2 h" and seconds(3 * 86400 + 7200, "zh") == "3天2小时"


def test_dates_times_and_distances_in_both_languages() -> None:
    day = date(2026, 11, 20)
    assert fmt.day(day) == "2026-11-20" and fmt.day(day, "zh") == "2026年11月20日"
    assert fmt.month_day(day) == "Nov 20" and fmt.month_day(day, "zh") == "11月20日"
    instant = datetime(2026, 11, 20, 1, 10, tzinfo=UTC)  # 09:10 in Shanghai
    assert fmt.local_time(instant, "Asia/Shanghai") == "2026-11-20 09:10 (Asia/Shanghai)"
    assert fmt.local_time(instant, "Asia/Shanghai", "zh") == "2026年11月20日 09:10（Asia/Shanghai）"
    late = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)  # already the 21st in Shanghai
    assert fmt.local_day(late, "Asia/Shanghai", "zh") == "2026年11月21日"
    assert fmt.utc_time(instant, "zh") == "2026年11月20日 01:10:00 UTC"
    assert fmt.metres(0.08) == "0.08 m" and fmt.metres(0.08, "zh") == "0.08 米"


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


def _rgb(hex_colour: str) -> list[int]:
    return [int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]


def test_heat_raster_colours_each_cell_on_the_legend_scale_and_leaves_empty_cells_clear() -> None:
    grid = np.zeros((20, 30))
    grid[2, 5] = 30.0  # a quiet cell
    grid[10, 20] = 240.0  # the busiest cell
    grid[19, 29] = 120.0  # half way: the legend's middle stop
    png, vmax = heat_raster(grid, target_px=300)
    assert vmax == 240.0
    rgba = cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    k = min(HEAT_PX_PER_CELL_MAX, 300 // 30)
    assert rgba.shape == (20 * k, 30 * k, 4)
    cell = lambda iy, ix: rgba[iy * k + k // 2, ix * k + k // 2]  # noqa: E731
    assert cell(10, 20).tolist() == [*_rgb(HEAT_COLOURS[-1]), 255]
    assert cell(19, 29).tolist() == [*_rgb(HEAT_COLOURS[4]), 255]
    assert cell(0, 0)[3] == 0 and cell(2, 6)[3] == 0  # no heat: transparent
    quiet = cell(2, 5)  # 1/8 of the way: 1/8 * 8 stops = exactly the second colour
    assert quiet.tolist() == [*_rgb(HEAT_COLOURS[1]), 255]
    # Every opaque pixel belongs to a cell with heat.
    assert int((rgba[..., 3] > 0).sum()) == 3 * k * k


def test_heat_raster_clips_at_the_colour_top() -> None:
    grid = np.zeros((4, 4))
    grid[0, 0], grid[1, 1], grid[2, 2] = 10.0, 20.0, 5000.0
    png, top = heat_raster(grid, target_px=4, top=20.0)
    assert top == 20.0
    rgba = cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    assert rgba[2, 2].tolist() == rgba[1, 1].tolist() == [*_rgb(HEAT_COLOURS[-1]), 255]
    assert rgba[0, 0].tolist() == [*_rgb(HEAT_COLOURS[4]), 255]  # half way up the scale


def test_floor_heat_keeps_time_inside_cars_off_the_floor_and_clips_at_a_percentile() -> None:
    grid = np.zeros((40, 40))  # 10 m x 10 m at 0.25 m
    grid[::2, ::2] = 10.0  # a quiet floor
    grid[10:14, 10:14] = 25_000.0  # people sitting in the car: cells 10-13 = 2.5-3.5 m
    grid[30, 30] = 400.0  # one busy floor cell
    interior = [(2.5, 2.5), (3.5, 2.5), (3.5, 3.5), (2.5, 3.5)]
    mask = zone_mask(interior, grid.shape, 0.25)
    assert mask.sum() == 16 and mask[10:14, 10:14].all()
    split = floor_heat(grid, 0.25, {"car-01": interior})
    assert split.inside_s == {"car-01": pytest.approx(16 * 25_000.0)}
    assert split.floor[10:14, 10:14].sum() == 0
    assert split.busiest_s == 400.0 and split.colour_top_s < 400.0 and split.clipped
    occupied = split.floor[split.floor > 0]
    assert split.colour_top_s == pytest.approx(float(np.percentile(occupied, CLIP_PERCENTILE)))
    with pytest.raises(ValueError, match="percentile"):
        floor_heat(grid, 0.25, {}, percentile=0)


def test_heatmap_spec_draws_the_raster_under_the_cars_with_a_legend_up_to_the_busiest_cell() -> None:
    grid = np.zeros((80, 120))
    grid[40, 60] = 500.0
    car = CarOutline(
        "car-01", "Aurora 极光", [(3, 5), (7.8, 5), (7.8, 6.9), (3, 6.9)], [(1, 3), (9, 3), (9, 8), (1, 8)]
    )
    spec = heatmap_spec(grid, 0.25, (30.0, 20.0), [car], colour_title="person-s")
    image, legend = spec["layer"][1], spec["layer"][2]
    assert image["mark"]["type"] == "image" and image["data"]["values"][0]["url"].startswith("data:image/png")
    assert legend["encoding"]["color"]["scale"]["domain"][-1] == 500.0
    assert legend["encoding"]["color"]["scale"]["range"] == list(HEAT_COLOURS)
    assert {r["label"] for r in spec["layer"][-1]["data"]["values"]} == {"Aurora 极光"}
    svg = to_svg(spec)  # drawn on the server; the car's name stays text for the browser's fonts
    assert svg.startswith("<svg") and "Aurora 极光" in svg and "data:image/png;base64," in svg


def test_radar_puts_brand_top_at_100_and_shows_its_scale() -> None:
    spec = radar_chart(
        ["a", "b", "c"], [("top", [100, 100, 100], "#000"), ("store", [50, 100, 0], "#111")], scale_title="%"
    )
    lines = spec["layer"][-1]["data"]["values"]
    store = [r for r in lines if r["series"] == "store"]
    assert [r["score"] for r in store] == [50.0, 100.0, 0.0, 50.0]  # closed polygon
    assert store[0]["x"] == pytest.approx(0.0) and store[0]["y"] == pytest.approx(50.0)
    scale = [r["label"] for r in spec["layer"][2]["data"]["values"]]
    assert scale == ["25", "50", "75", "100"]
    assert spec["title"]["text"] == "%"


def test_radar_does_not_hide_top_under_a_store_above_it() -> None:
    spec = radar_chart(
        ["a", "b", "c"],
        [("top", [100, 100, 100], "#000"), ("store", [160, 100, 80], "#111")],
        scale_title="%",
    )
    store = [r for r in spec["layer"][-1]["data"]["values"] if r["series"] == "store"]
    assert store[0]["score"] == 160.0 and store[0]["y"] == pytest.approx(160.0)  # outside TOP's ring
    assert radar_rings([160.0]) == [25, 50, 75, 100, 125, 150, 175]
    assert radar_rings([900.0])[-1] == 200  # drawn on the outer ring; the table holds the value


def test_hq_lists_are_asked_for_once_a_minute() -> None:
    from datetime import UTC, datetime

    from dashboard.views.hq import query_minute

    a = query_minute(datetime(2026, 11, 23, 18, 5, 1, 123456, tzinfo=UTC))
    b = query_minute(datetime(2026, 11, 23, 18, 5, 59, 999999, tzinfo=UTC))
    assert a == b == datetime(2026, 11, 23, 18, 5, tzinfo=UTC)  # one cache key for the whole minute
    assert query_minute(datetime(2026, 11, 23, 18, 6, tzinfo=UTC)) > a


def test_table_csv_keeps_chinese_and_leaves_missing_values_empty() -> None:
    from dashboard.views.common import table_csv

    data = table_csv({"车型": ["Model S", "极光"], "浏览人数": [30, None]})
    assert data.startswith("\ufeff".encode())
    assert data.decode("utf-8-sig").splitlines() == ["车型,浏览人数", "Model S,30", "极光,"]


def test_report_stacks_the_figures_and_the_page_charts() -> None:
    from dashboard.report import report_pdf, report_spec

    radar = radar_chart(["a", "b", "c"], [("top", [100, 100, 100], "#000")], scale_title="%")
    spec = report_spec("Pudong Flagship — 2026-11-20", ["Visitors: 59", "Browse rate: 77.97%"], [radar])
    text, chart = spec["vconcat"]
    assert [r["line"] for r in text["data"]["values"]] == ["Visitors: 59", "Browse rate: 77.97%"]
    assert "config" not in chart and "$schema" not in chart and chart["layer"] == radar["layer"]
    assert report_pdf("t", ["x"], [radar]).startswith(b"%PDF")


def test_zone_seconds_counts_around_a_car_apart_from_inside_it() -> None:
    grid = np.zeros((40, 40))  # 10 m x 10 m at 0.25 m
    grid[4:36, 4:36] = 1.0  # around: browse zone 1-9 m
    grid[16:24, 16:24] = 100.0  # inside: interior 4-6 m
    browse = [(1.0, 1.0), (9.0, 1.0), (9.0, 9.0), (1.0, 9.0)]
    interior = [(4.0, 4.0), (6.0, 4.0), (6.0, 6.0), (4.0, 6.0)]
    around = zone_seconds(grid, 0.25, {"car-01": browse}, {"car-01": interior})
    inside = zone_seconds(grid, 0.25, {"car-01": interior})
    assert around == {"car-01": pytest.approx(32 * 32 - 8 * 8)}
    assert inside == {"car-01": pytest.approx(8 * 8 * 100.0)}
