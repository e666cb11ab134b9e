"""A store served by several boxes: the areas must tile the floor with the overlap the hand-over needs."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.config import ConfigError, parse_config
from edge.floor.calibration import calibrate_node
from edge.store_areas import BoxLayout, propose_areas, tiling_problems

REPO = Path(__file__).resolve().parents[2]
SIM_STORE = REPO / "examples" / "sim-store.yaml"
SHOWROOM = Path(sys.executable).with_name("showroom")


def rect(x0: float, x1: float, depth: float = 20.0) -> list[list[float]]:
    return [[x0, 0], [x1, 0], [x1, depth], [x0, depth]]


def store(node_id: str, *areas: tuple[str, float, float], overlap_m: float = 2.0) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SIM_STORE.read_text())
    data["node_id"] = node_id
    data["floor"]["areas"] = [{"node_id": n, "polygon_m": rect(x0, x1)} for n, x0, x1 in areas]
    data["floor"]["overlap_m"] = overlap_m
    return data


def problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(copy.deepcopy(data), "store.yaml")
    return info.value.problems


def test_two_areas_that_tile_the_floor_between_the_cars_are_valid() -> None:
    for node in ("node-a", "node-b"):
        cfg = parse_config(store(node, ("node-a", 0, 19.15), ("node-b", 19.15, 30)))
        layout = BoxLayout.of(cfg.node_id, [(a.node_id, a.polygon_m) for a in cfg.floor.areas], 2.0)
        assert list(layout.neighbours) == ["node-b" if node == "node-a" else "node-a"]
        calibrate_node(cfg)  # its cameras see its zones and the strip past the boundary


def test_a_gap_between_areas_is_named_with_where_it_is() -> None:
    found = problems(store("node-a", ("node-a", 0, 19.15), ("node-b", 20.0, 30)))
    assert ("floor.areas", "no area covers 17.00 m² of the floor at x 19.15..20.00, y 0.00..20.00 m") in found


def test_overlapping_areas_are_named() -> None:
    found = problems(store("node-a", ("node-a", 0, 19.6), ("node-b", 19.15, 30)))
    assert any(
        path == "floor.areas[1].polygon_m" and "overlap by 9.00 m² at x 19.15..19.60" in msg
        for path, msg in found
    ), found


def test_a_car_cut_by_the_boundary_is_named() -> None:
    found = problems(store("node-a", ("node-a", 0, 15), ("node-b", 15, 30)))
    paths = {path for path, msg in found if "crosses the boundary between node-a and node-b" in msg}
    assert paths == {"cars[1].browse_zone_m", "cars[4].browse_zone_m"}  # car-02 and car-05 span x = 15


def test_a_node_without_an_area_and_an_area_outside_the_floor_are_named() -> None:
    found = problems(store("node-c", ("node-a", 0, 19.15), ("node-b", 19.15, 31)))
    assert ("floor.areas", "no area belongs to this node 'node-c' (areas of: node-a, node-b)") in found
    assert any(
        p == "floor.areas[1].polygon_m" and "outside the floor plan at x 30.00..31.00" in m for p, m in found
    )


def test_an_area_nobody_borders_cannot_receive_visitors() -> None:
    found = tiling_problems(
        (30, 20), [("node-a", rect(0, 10)), ("node-b", rect(20, 30)), ("node-c", rect(10, 20))]
    )
    assert found == []
    apart = tiling_problems(
        (30, 20), [("node-a", rect(0, 30, 10)), ("node-b", [[0, 10], [30, 10], [30, 20], [0, 20]])]
    )
    assert apart == []
    lonely = tiling_problems((30, 20), [("node-a", rect(0, 10)), ("node-b", rect(10.5, 30))])
    assert any("shares no boundary" in m for _, m in lonely) and any("no area covers" in m for _, m in lonely)


def test_cameras_that_miss_the_overlap_strip_are_named() -> None:
    data = store("node-b", ("node-a", 0, 19.15), ("node-b", 19.15, 30), overlap_m=4.0)
    data["cameras"] = [c for c in data["cameras"] if c["id"] == "cam-entrance"]
    cfg = parse_config(data)
    with pytest.raises(ConfigError) as info:
        calibrate_node(cfg)
    strip = [msg for path, msg in info.value.problems if path == "floor.overlap_m"]
    assert len(strip) == 1 and "strip past the boundary with 'node-a'" in strip[0], info.value.problems


def test_check_config_prints_ok_for_a_box_of_a_split_store(tmp_path: Path) -> None:
    path = tmp_path / "node-b.yaml"
    path.write_text(yaml.safe_dump(store("node-b", ("node-a", 0, 19.15), ("node-b", 19.15, 30))))
    ok = subprocess.run(
        [str(SHOWROOM), "edge", "check-config", str(path)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK")
    bad = tmp_path / "gap.yaml"
    bad.write_text(yaml.safe_dump(store("node-b", ("node-a", 0, 19.15), ("node-b", 20, 30))))
    strip = tmp_path / "strip.yaml"
    blind = store("node-b", ("node-a", 0, 19.15), ("node-b", 19.15, 30), overlap_m=4.0)
    blind["cameras"] = [c for c in blind["cameras"] if c["id"] == "cam-entrance"]
    strip.write_text(yaml.safe_dump(blind))
    result = subprocess.run(
        [str(SHOWROOM), "edge", "check-config", str(strip)], capture_output=True, text=True
    )
    assert result.returncode == 1 and "floor.overlap_m" in result.stderr, result.stderr
    result = subprocess.run(
        [str(SHOWROOM), "edge", "check-config", str(bad)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "no area covers 17.00 m²" in result.stderr


@pytest.mark.parametrize("boxes", [1, 2, 3])
def test_the_proposed_split_tiles_the_floor_and_cuts_no_car(boxes: int) -> None:
    data = yaml.safe_load(SIM_STORE.read_text())
    zones = [car["browse_zone_m"] for car in data["cars"]]
    areas = propose_areas((30, 20), zones, boxes)
    assert [n for n, _ in areas] == [f"node-{c}" for c in "abcd"[:boxes]]
    assert tiling_problems((30, 20), areas) == []
    cuts = [poly[1][0] for _, poly in areas[:-1]]
    if boxes == 2:
        assert cuts == [19.15]  # the gap between the cars nearest to the middle
    if boxes == 3:
        assert cuts == [10.15, 19.15]
    for node_id, _ in areas:  # every box's configuration with this split is valid
        floor = {"size_m": [30, 20], "areas": [{"node_id": n, "polygon_m": poly} for n, poly in areas]}
        assert parse_config({**data, "node_id": node_id, "floor": floor}).node_id == node_id
