"""`showroom hardware plan` through the real CLI: the example showroom is covered door by door and car by
car, the drawing is written, a pillar on a door shows as a blind spot, and bad input exits 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from edge.config import parse_config
from showroom.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "showroom-shanghai-01.yaml"


def plan(*args: str) -> Any:
    return CliRunner().invoke(main, ["hardware", "plan", *args])


@pytest.fixture(scope="module")
def example_plan(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("plan") / "plan.png"
    result = plan(
        "--floor", str(EXAMPLE), "--ceiling-m", "4.5", "--camera", "fisheye-12mp", "--out", str(out), "--json"
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output), out


def test_the_example_showroom_is_covered_door_by_door_and_car_by_car(
    example_plan: tuple[dict[str, Any], Path],
) -> None:
    report, _ = example_plan
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for item in report["items"]:
        by_kind.setdefault(item["kind"], []).append(item)
    assert {i["id"] for i in by_kind["door"]} == {"main", "side"}
    assert {i["id"] for i in by_kind["car_browse_zone"]} == {f"car-0{n}" for n in range(1, 7)}
    assert len(by_kind["car_door_area"]) == 11
    for kind in ("door", "car_browse_zone", "car_door_area"):
        for item in by_kind[kind]:
            assert item["coverage_pct"] == 100.0, item
            # Feet where the counts need them (door lines, car doors); a browse zone needs heads: the node
            # recovers feet a car roof hides.
            assert item["feet_required"] is (kind != "car_browse_zone")
    assert report["coverage_pct"] >= 99.0
    assert report["floor_area_m2"] == pytest.approx(36 * 24 - sum([9.6, 10.5, 7.2, 9.6, 10.5, 7.2]), abs=3)
    n = report["cameras_needed"]
    assert 9 <= n <= 60 and len(report["cameras"]) == n  # at least the floor over one footprint each
    assert report["boxes_needed"] == -(-n // report["cameras_per_box"])
    quantities = {line.get("profile"): line["quantity"] for line in report["bill_of_materials"]}
    assert quantities["fisheye-12mp"] == n and quantities["intel-n100-4c"] == report["boxes_needed"]
    print(f"example showroom: {n} fisheye cameras at 4.5 m, coverage {report['coverage_pct']}%")


def test_the_plan_is_drawn_as_a_png(example_plan: tuple[dict[str, Any], Path]) -> None:
    report, out = example_plan
    assert report["png"] == str(out)
    image = cv2.imread(str(out))
    assert image is not None
    h, w = image.shape[:2]
    assert w >= 1000 and h >= 600
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50  # not blank: outline, zones, footprints, text
    assert (image < 50).all(axis=2).sum() > 2000  # the dark outline and the text


def test_the_plan_is_deterministic(example_plan: tuple[dict[str, Any], Path]) -> None:
    report, _ = example_plan
    again = plan("--floor", str(EXAMPLE), "--ceiling-m", "4.5", "--camera", "fisheye-12mp", "--json")
    second = json.loads(again.output)
    assert second["cameras"] == report["cameras"]


def pillar_floor(tmp_path: Path) -> Path:
    """A 14 x 9 m floor whose door is half hidden by a pillar standing on the door line."""
    data = {
        "floor": {"size_m": [14, 9]},
        "doors": [{"id": "main", "line_m": [[4.0, 8.5], [9.0, 8.5]], "inside_point_m": [6.5, 6.0]}],
        "cars": [
            {
                "id": "car-a",
                "model_name": "Sedan",
                "browse_zone_m": [[1, 1], [7, 1], [7, 5], [1, 5]],
                "interior_zone_m": [[2.5, 2.2], [5.5, 2.2], [5.5, 3.8], [2.5, 3.8]],
                "door_areas_m": [[[3, 1.5], [5, 1.5], [5, 2.3], [3, 2.3]]],
            }
        ],
        "obstacles": [{"id": "pillar", "polygon_m": [[5.5, 7.6], [7.0, 7.6], [7.0, 9.0], [5.5, 9.0]]}],
    }
    path = tmp_path / "floor.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_pillar_on_a_door_is_reported_as_a_blind_spot_over_that_door(tmp_path: Path) -> None:
    out = tmp_path / "pillar.png"
    floor = pillar_floor(tmp_path)
    result = plan(
        "--floor", str(floor), "--ceiling-m", "4", "--camera", "fisheye-12mp", "--out", str(out), "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    door = next(i for i in report["items"] if i["kind"] == "door")
    assert door["coverage_pct"] < 100.0
    over_door = [b for b in report["blind_spots"] if "door:main" in b["touches"]]
    assert over_door, report["blind_spots"]
    spot = over_door[0]
    assert spot["area_m2"] >= 1.0  # the pillar's 1.5 m of door line, 1 m band inside
    assert "pillar" in spot["cause"]
    x0, y0, x1, _ = spot["bounds_m"]
    assert x0 >= 5.3 and x1 <= 7.2 and y0 >= 7.4
    car = next(i for i in report["items"] if i["kind"] == "car_browse_zone")
    assert car["coverage_pct"] == 100.0  # the rest of the floor is still covered
    # Drawn in red where the pillar stands on the door.
    image = cv2.imread(str(out))
    assert image is not None
    red = (image[:, :, 2] > 180) & (image[:, :, 1] < 120) & (image[:, :, 0] < 120)
    assert red.sum() > 50


def test_a_ceiling_below_the_camera_minimum_exits_2_with_the_reason() -> None:
    result = plan("--floor", str(EXAMPLE), "--ceiling-m", "2.2", "--camera", "dome-4mp-2.8mm")
    assert result.exit_code == 2
    assert result.output.strip() == (
        "camera profile dome-4mp-2.8mm: min_mount_m: ceiling 2.2 m is below this camera's minimum "
        "mounting height 2.5 m"
    )


def test_a_floor_outline_that_does_not_close_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    data = yaml.safe_load(pillar_floor(tmp_path).read_text())
    data["floor"]["outline_m"] = [[0, 0], [14, 9], [14, 0], [0, 9]]  # crosses itself
    path = tmp_path / "bowtie.yaml"
    path.write_text(yaml.safe_dump(data))
    result = plan("--floor", str(path), "--ceiling-m", "4", "--camera", "fisheye-12mp")
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"{path}: floor.outline_m: outline is not a simple polygon")
    assert "Traceback" not in result.output


def test_a_floor_file_with_a_key_given_twice_exits_2_naming_the_line(tmp_path: Path) -> None:
    """PyYAML alone keeps the last of two keys silently; the planner refuses the file and says where."""
    text = pillar_floor(tmp_path).read_text()
    path = tmp_path / "twice.yaml"
    path.write_text(text.replace("floor:\n", "floor:\n  size_m: [99, 99]\n", 1))
    result = plan("--floor", str(path), "--ceiling-m", "4", "--camera", "fisheye-12mp")
    assert result.exit_code == 2, result.output
    assert f"{path}: line " in result.output and "'size_m' appears twice" in result.output
    assert "Traceback" not in result.output


def test_an_invalid_node_config_exits_2_with_its_key(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["cars"][0]["interior_zone_m"] = [[4, 5], [9, 7], [9, 5], [4, 7]]
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(data))
    result = plan("--floor", str(path), "--ceiling-m", "4", "--camera", "fisheye-12mp")
    assert result.exit_code == 2
    assert f"{path}: cars[0].interior_zone_m: zone is not a simple polygon" in result.output


def test_when_one_box_is_not_enough_the_plan_splits_the_floor_between_boxes() -> None:
    """Two 8-core boxes for the example showroom: one area each, boundaries between the cars, usable as
    `floor.areas` in the node configuration; a box left with more cameras than it takes is flagged."""
    args = ["--floor", str(EXAMPLE), "--ceiling-m", "4.5", "--camera", "fisheye-12mp", "--box", "x86-8c"]
    result = plan(*args, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["boxes_needed"] == 2
    areas = report["box_areas"]
    assert [a["node_id"] for a in areas] == ["node-a", "node-b"]
    assigned = [cam for a in areas for cam in a["cameras"]]
    assert sorted(assigned) == sorted(c["id"] for c in report["cameras"])  # every camera once
    for a in areas:
        assert a["over_capacity"] is (len(a["cameras"]) > report["cameras_per_box"])
    data = yaml.safe_load(EXAMPLE.read_text())
    data["floor"]["areas"] = [{"node_id": a["node_id"], "polygon_m": a["polygon_m"]} for a in areas]
    data["node_id"] = "node-b"
    parse_config(data)  # tiles the floor, cuts no car, names this node
    text = plan(*args)
    assert "split across 2 boxes" in text.output and "node-b: x " in text.output
    one = plan(*args, "--fps", "2", "--json")
    assert json.loads(one.output)["box_areas"] == []  # one box is enough: no split
