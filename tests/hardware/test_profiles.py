"""Box and camera profiles: every shipped one validates, bad ones are refused by key, and a node config that
names its box runs its detector on the provider the profile resolves to on this machine."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest
import yaml
from click.testing import CliRunner

from edge.config import ConfigError, parse_config
from edge.node.runtime import default_detector
from hardware.profiles import PERSON_HEIGHT_M, ProfileError, camera_catalogue, load_camera_file
from showroom.cli import main
from vision_models.boxes import box_catalogue, choose_provider, load_box

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "showroom-shanghai-01.yaml"
PETS_EXAMPLE = REPO / "examples" / "pets09.yaml"
CAMERA_DIR = REPO / "hardware" / "profiles" / "cameras"


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_every_shipped_profile_validates_and_the_catalogue_covers_the_common_boxes() -> None:
    boxes = box_catalogue()
    assert {"intel-n100-4c", "x86-8c", "jetson-orin-nano", "rpi5-hailo8l", "x86-2c"} <= set(boxes)
    for box in boxes.values():
        assert box.providers[-1] == "cpu" or "cpu" in box.providers, box.id
        assert len(box.source) >= 20
    cameras = camera_catalogue()
    assert len(cameras) >= 3
    assert {c.projection for c in cameras.values()} == {"rectilinear", "fisheye"}
    assert "oblique" in {c.mount for c in cameras.values()}


def test_the_reference_box_capacity_is_the_measured_four_cameras_at_5_fps() -> None:
    # BENCHMARKS.md, Node throughput: 4 x 5 fps with 0% dropped on 2 cores; 8 x 5 fps dropped 7-17%.
    reference = load_box("x86-2c")
    assert reference.measured
    assert reference.cameras_at(5) == 4
    assert reference.capacity_fps() < 40
    # Estimates say so; the Pi's Hailo-8L is not an ONNX Runtime provider, so that box runs on its CPU.
    pi = load_box("rpi5-hailo8l")
    assert not pi.measured and pi.providers == ["cpu"]
    assert pi.accelerator is not None and "not support" in pi.accelerator


def test_provider_choice_follows_the_profile_and_falls_back_to_the_cpu() -> None:
    jetson = load_box("jetson-orin-nano")
    choice = choose_provider(jetson, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert (choice.provider, choice.missing) == ("cuda", ("tensorrt",))
    choice = choose_provider(jetson, ["CPUExecutionProvider"])
    assert (choice.provider, choice.missing) == ("cpu", ("tensorrt", "cuda"))
    assert jetson.cameras_at(5, "cuda") > jetson.cameras_at(5, "cpu")


def test_a_camera_profile_with_zero_field_of_view_is_refused_naming_the_key(tmp_path: Path) -> None:
    data = yaml.safe_load((CAMERA_DIR / "dome-4mp-2.8mm.yaml").read_text())
    data["hfov_deg"] = 0
    path = tmp_path / "flat.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ProfileError) as info:
        load_camera_file(path)
    assert f"{path}: hfov_deg: Input should be greater than 0" in str(info.value)

    result = CliRunner().invoke(
        main,
        ["hardware", "plan", "--floor", str(EXAMPLE), "--ceiling-m", "4", "--camera", str(path)],
    )
    assert result.exit_code == 2
    assert "hfov_deg" in result.output and "Traceback" not in result.output


def test_the_head_plane_bounds_a_downward_camera(tmp_path: Path) -> None:
    dome = camera_catalogue()["dome-4mp-2.8mm"]
    feet = dome.footprint((0.0, 0.0), 4.0, 0.0)
    head = dome.footprint((0.0, 0.0), 4.0, PERSON_HEIGHT_M)
    assert head.area < feet.area
    assert head.area == pytest.approx(feet.area * ((4.0 - PERSON_HEIGHT_M) / 4.0) ** 2, rel=0.02)


def test_profiles_command_lists_boxes_and_cameras_with_capacity() -> None:
    result = run_cli("hardware", "profiles")
    assert result.exit_code == 0, result.output
    assert "intel-n100-4c" in result.output and "dome-4mp-2.8mm" in result.output
    assert "4 (20.3 fps)" in result.output  # the reference box, measured
    report = json.loads(run_cli("hardware", "profiles", "--json").output)
    by_id = {b["id"]: b for b in report["boxes"]}
    assert by_id["x86-2c"]["cameras_at_5fps"] == 4 and by_id["x86-2c"]["measured"] is True
    assert {c["id"] for c in report["cameras"]} == set(camera_catalogue())


def _node_config_with_box(profile: str | None, tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(yaml.safe_load(PETS_EXAMPLE.read_text()))
    video = tmp_path / "camera.mp4"
    video.write_bytes(b"")  # --check only needs the file to exist
    data["cameras"][0]["source"] = str(video)
    data["outbox"] = {"path": str(tmp_path / "outbox.sqlite")}
    if profile is not None:
        data["box"] = {"profile": profile}
    return data


def test_existing_configs_need_no_box_and_run_on_the_cpu(tmp_path: Path) -> None:
    config = parse_config(_node_config_with_box(None, tmp_path))
    assert config.box is None
    detector = default_detector(config)
    assert detector.session.get_providers() == ["CPUExecutionProvider"]  # type: ignore[attr-defined]


def test_a_node_naming_a_cuda_box_falls_back_to_the_cpu_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert "CUDAExecutionProvider" not in ort.get_available_providers(), "this test expects a CPU machine"
    config = parse_config(_node_config_with_box("jetson-orin-nano", tmp_path))
    assert config.box is not None and config.box.profile == "jetson-orin-nano"
    with caplog.at_level(logging.WARNING, logger="edge.node.runtime"):
        detector = default_detector(config)
    assert detector.session.get_providers() == ["CPUExecutionProvider"]  # type: ignore[attr-defined]
    assert detector.provider == "cpu"  # type: ignore[attr-defined]
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "jetson-orin-nano" in warning and "tensorrt, cuda" in warning


def test_edge_run_check_names_the_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOWROOM_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(_node_config_with_box("intel-n100-4c", tmp_path)))
    result = run_cli("edge", "run", "--check", "--config", str(path))
    assert result.exit_code == 0, result.output
    assert "verified, provider cpu (box intel-n100-4c)" in result.output


def test_an_unknown_box_profile_is_a_config_error_listing_the_known_ones(tmp_path: Path) -> None:
    data = _node_config_with_box("n100", tmp_path)
    with pytest.raises(ConfigError) as info:
        parse_config(data, "node.yaml")
    [(key, message)] = info.value.problems
    assert key == "box.profile"
    assert "unknown box profile 'n100'" in message
    for known in box_catalogue():
        assert known in message
