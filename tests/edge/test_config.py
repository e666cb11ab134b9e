"""Node configuration: the example validates; every kind of mistake is named with its key path."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.config import ConfigError, NodeConfig, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "showroom-shanghai-01.yaml"


def example_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return data


def problems_for(mutate: Any) -> list[tuple[str, str]]:
    data = copy.deepcopy(example_data())
    mutate(data)
    with pytest.raises(ConfigError) as info:
        parse_config(data, "test.yaml")
    return info.value.problems


# The dashboard's users file sits beside the node configs; tests/dashboard checks it with its own loader.
NOT_NODE_CONFIGS = {"dashboard-users.yaml"}


def test_every_example_config_is_valid() -> None:
    files = sorted(p for p in (REPO / "examples").glob("*.yaml") if p.name not in NOT_NODE_CONFIGS)
    assert len(files) >= 3
    for path in files:
        assert isinstance(load_config(path), NodeConfig), path


def test_defaults_follow_the_domain_definitions() -> None:
    data = example_data()
    del data["thresholds"]
    cfg = parse_config(data)
    t = cfg.thresholds
    assert (t.browse_min_s, t.car_entry_min_s, t.reception_min_s, t.reception_radius_m, t.heat_cell_m) == (
        10,
        3,
        30,
        1.5,
        0.25,
    )


def _typo(d: dict[str, Any]) -> None:
    d["cameras"][0]["fsp"] = 5


def _wrong_type(d: dict[str, Any]) -> None:
    d["cameras"][1]["fps"] = "fast"


def _two_point_zone(d: dict[str, Any]) -> None:
    d["cars"][2]["browse_zone_m"] = [[22, 3], [29, 3]]


def _bow_tie(d: dict[str, Any]) -> None:
    d["cars"][0]["browse_zone_m"] = [[2, 3], [10, 9], [10, 3], [2, 9]]


def _zero_door(d: dict[str, Any]) -> None:
    d["doors"][1]["line_m"] = [[33, 23.5], [33, 23.5]]


def _car_outside(d: dict[str, Any]) -> None:
    car = d["cars"][5]
    car["browse_zone_m"] = [[30, 12], [40, 12], [40, 18], [30, 18]]
    car["interior_zone_m"] = [[32, 14], [38, 14], [38, 16], [32, 16]]
    car["door_areas_m"] = [[[33, 13], [35, 13], [35, 14.5], [33, 14.5]]]


def _few_calibration_points(d: dict[str, Any]) -> None:
    cal = d["cameras"][0]["calibration"]
    cal["image_points_px"] = cal["image_points_px"][:3]
    cal["floor_points_m"] = cal["floor_points_m"][:3]


def _unpaired_calibration(d: dict[str, Any]) -> None:
    d["cameras"][2]["calibration"]["floor_points_m"].pop()


def _bad_timezone(d: dict[str, Any]) -> None:
    d["timezone"] = "Asia/Beijing"


def _password_in_file(d: dict[str, Any]) -> None:
    d["broker"]["password"] = "hunter2"


def _duplicate_car(d: dict[str, Any]) -> None:
    d["cars"][1]["id"] = "car-01"


def _car_height_in_centimetres(d: dict[str, Any]) -> None:
    d["cars"][1]["height_m"] = 170


def _reid_model_as_detector(d: dict[str, Any]) -> None:
    d["detector"] = {"model": "person-reid-0288"}


def _detector_as_reid_model(d: dict[str, Any]) -> None:
    d["tracker"] = {"reid": {"model": "yolox-nano"}}


def _detector_id_typo(d: dict[str, Any]) -> None:
    d["detector"] = {"model": "rtmdet-nano-persn"}


@pytest.mark.parametrize(
    ("mutate", "path", "reason"),
    [
        (_typo, "cameras[0].fsp", "unknown key"),
        (_wrong_type, "cameras[1].fps", "'fast'"),
        (_two_point_zone, "cars[2].browse_zone_m", "at least 3 points"),
        (_bow_tie, "cars[0].browse_zone_m", "Self-intersection"),
        (_zero_door, "doors[1]", "length 0.00 m"),
        (_car_outside, "cars[5].browse_zone_m", "outside the floor plan"),
        (_few_calibration_points, "cameras[0].calibration.image_points_px", "at least 4"),
        (_unpaired_calibration, "cameras[2].calibration", "pair up"),
        (_bad_timezone, "timezone", "unknown time zone 'Asia/Beijing'"),
        (_password_in_file, "broker.password", "unknown key"),
        (_duplicate_car, "cars", "duplicate id(s) car-01"),
        (_car_height_in_centimetres, "cars[1].height_m", "less than or equal to 4"),
        (_reid_model_as_detector, "detector.model", "is a re-identification model, not a person detector"),
        (
            _detector_as_reid_model,
            "tracker.reid.model",
            "is a person detector, not a re-identification model",
        ),
        (_detector_id_typo, "detector.model", "unknown model id 'rtmdet-nano-persn'"),
    ],
)
def test_mistakes_are_named_with_key_path_and_reason(mutate: Any, path: str, reason: str) -> None:
    problems = problems_for(mutate)
    assert any(p.startswith(path) and reason in m for p, m in problems), problems


def test_every_problem_is_reported_at_once() -> None:
    def two_mistakes(d: dict[str, Any]) -> None:
        _typo(d)
        _wrong_type(d)

    paths = [p for p, _ in problems_for(two_mistakes)]
    assert "cameras[0].fsp" in paths and "cameras[1].fps" in paths


def test_password_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(EXAMPLE)
    monkeypatch.delenv("SHOWROOM_MQTT_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match=r"\$SHOWROOM_MQTT_PASSWORD is not set"):
        cfg.broker.password()
    monkeypatch.setenv("SHOWROOM_MQTT_PASSWORD", "s3cret")
    assert cfg.broker.password() == "s3cret"
    assert cfg.broker.host_port == ("mqtt.example-dealer.cn", 8883)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("showroom")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60, check=False)


def test_check_config_command_ok_and_errors(tmp_path: Path) -> None:
    # The example names the box's CA bundle (/etc/showroom/ca.pem): here, one beside the config.
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    here = example_data()
    here["broker"]["tls"]["ca_file"] = "ca.pem"
    example = tmp_path / "example.yaml"
    example.write_text(yaml.safe_dump(here))
    ok = run_cli("edge", "check-config", str(example))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK ")
    if not Path("/etc/showroom/ca.pem").exists():
        missing_ca = run_cli("edge", "check-config", str(EXAMPLE))
        assert missing_ca.returncode == 1 and "broker.tls.ca_file: /etc/showroom/ca.pem does not exist" in (
            missing_ca.stderr
        )

    data = example_data()
    _typo(data)
    _bow_tie(data)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = run_cli("edge", "check-config", str(bad))
    assert result.returncode == 1
    assert "cameras[0].fsp: unknown key" in result.stderr
    assert "cars[0].browse_zone_m" in result.stderr and "Self-intersection" in result.stderr

    broken = tmp_path / "broken.yaml"
    broken.write_text("store_id: a\ncameras: [\n")
    result = run_cli("edge", "check-config", str(broken))
    assert result.returncode == 1 and "not valid YAML" in result.stderr and "line" in result.stderr

    missing = run_cli("edge", "check-config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr
