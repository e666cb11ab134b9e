"""Camera-to-floor calibration: robust fit, reprojection error in metres, configuration-time checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from showroom_builders import camera, config_dict

from edge.config import Calibration, CameraConfig, ConfigError, load_config, parse_config
from edge.floor.calibration import CalibrationError, calibrate_camera, calibrate_node, fit_homography

REPO = Path(__file__).resolve().parents[2]
H_TRUE = np.array([[0.02, 0.001, -1.0], [0.0005, 0.03, -2.0], [0.0001, 0.0008, 1.0]])


def project(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    homog = np.hstack([pts, np.ones((len(pts), 1))]) @ h.T
    return homog[:, :2] / homog[:, 2:3]


def image_points(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform([50, 200], [1850, 1050], (n, 2))


def test_exact_points_give_the_homography_and_zero_error() -> None:
    img = image_points(8)
    cal = Calibration(image_points_px=img.tolist(), floor_points_m=project(H_TRUE, img).tolist())
    h, error_m, inliers = fit_homography(cal)
    probe = image_points(20, seed=1)
    assert np.allclose(project(h, probe), project(H_TRUE, probe), atol=1e-3)
    assert error_m < 1e-3 and inliers.all()


def test_one_mismeasured_mark_is_rejected_and_the_error_stays_small() -> None:
    img = image_points(10)
    floor = project(H_TRUE, img)
    floor += np.random.default_rng(2).normal(0, 0.02, floor.shape)  # 2 cm tape-measure noise
    floor[3] += (1.5, -1.0)  # one mark measured 1.8 m off
    h, error_m, inliers = fit_homography(
        Calibration(image_points_px=img.tolist(), floor_points_m=floor.tolist())
    )
    assert not inliers[3] and inliers.sum() == 9
    assert error_m < 0.05
    probe = image_points(20, seed=3)
    assert np.abs(project(h, probe) - project(H_TRUE, probe)).max() < 0.15


def test_six_consistent_marks_are_all_kept_and_fitted() -> None:
    """Installers give 5-7 marks. Any 4 of them fit exactly, so a median-residual fit (LMedS) may keep an
    ill-conditioned four and throw good marks away; every consistent mark must stay in the fit."""
    img = np.array(
        [[74.5, 864.3], [1799.0, 1014.4], [1356.2, 226.6], [62.1, 226.6], [806.1, 368.8], [960.0, 418.0]]
    )
    floor = np.array([[16.5, 4.5], [26.5, 3.5], [29.5, 19.5], [5.0, 19.5], [20.0, 12.5], [22.0, 11.0]])
    h, error_m, inliers = fit_homography(
        Calibration(image_points_px=img.tolist(), floor_points_m=floor.tolist())
    )
    assert inliers.all()
    assert error_m < 0.005
    assert np.linalg.norm(project(h, img) - floor, axis=1).max() < 0.005


def test_one_mismeasured_mark_among_six_is_left_out_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    img = image_points(6, seed=7)
    floor = project(H_TRUE, img)
    floor[2] += (0.9, 0.4)
    cam = camera()
    cam["calibration"] = {"image_points_px": img.tolist(), "floor_points_m": floor.tolist()}
    with caplog.at_level("WARNING", logger="edge.floor.calibration"):
        projection = calibrate_camera(CameraConfig.model_validate(cam))
    assert projection.inliers.tolist() == [True, True, False, True, True, True]
    assert projection.error_m < 1e-3
    assert "calibration point 2" in caplog.text and "0.98 m off" in caplog.text


def test_collinear_points_are_refused() -> None:
    cal = Calibration(
        image_points_px=[[0, 0], [10, 10], [20, 20], [30, 30]],
        floor_points_m=[[0, 0], [1, 1], [2, 2], [3, 3]],
    )
    with pytest.raises(CalibrationError, match="degenerate"):
        fit_homography(cal)


def test_inaccurate_calibration_is_a_configuration_error_naming_the_camera() -> None:
    cam = camera()
    img = np.random.default_rng(4).uniform([0, 0], [1000, 1100], (12, 2))
    floor = img / 50 + np.random.default_rng(5).normal(0, 0.12, (12, 2))  # marks measured carelessly
    cam["calibration"] = {
        "image_points_px": img.tolist(),
        "floor_points_m": floor.tolist(),
        "max_error_m": 0.05,
    }
    with pytest.raises(ConfigError) as err:
        calibrate_node(parse_config(config_dict(cameras=[cam])))
    path, message = err.value.problems[0]
    assert path == "cameras[0].calibration"
    assert "cam-a" in message and "max_error_m" in message


def test_camera_without_calibration_is_a_configuration_error() -> None:
    cam = camera()
    del cam["calibration"]
    with pytest.raises(ConfigError) as err:
        calibrate_node(parse_config(config_dict(cameras=[cam])))
    assert err.value.problems[0][0] == "cameras[0].calibration"
    assert "no calibration" in err.value.problems[0][1]


def test_zone_outside_every_camera_view_is_a_configuration_error() -> None:
    # The only camera sees x in [0, 9]: the door (x 8..12) and the staff desk (x 16..19) are not covered.
    cfg = parse_config(config_dict(cameras=[camera(x0_m=0, x1_m=9)]))
    with pytest.raises(ConfigError) as err:
        calibrate_node(cfg)
    paths = [p for p, _ in err.value.problems]
    assert "doors[0].line_m" in paths
    assert "staff_areas[0].polygon_m" in paths
    assert "cars[0].browse_zone_m" in paths  # browse zone spans x 2..10
    assert all("outside every camera's view" in m for _, m in err.value.problems)


def test_two_cameras_together_cover_the_floor() -> None:
    cfg = parse_config(config_dict(cameras=[camera("cam-a", 0, 11), camera("cam-b", 9, 20)]))
    projections = calibrate_node(cfg)
    assert set(projections) == {"cam-a", "cam-b"}
    assert all(p.error_m < 1e-6 for p in projections.values())


def test_points_beyond_the_horizon_are_not_on_the_floor() -> None:
    img = image_points(8)
    cal = Calibration(image_points_px=img.tolist(), floor_points_m=project(H_TRUE, img).tolist())
    projection = calibrate_camera(CameraConfig(id="cam-x", source="sim://x", calibration=cal))
    # w = 0.0001 x + 0.0008 y + 1 is negative above y = -1250: the sky, not the floor.
    floor, ok = projection.to_floor([[500, 500], [500, -3000]])
    assert ok.tolist() == [True, False]
    assert np.allclose(floor[0], project(H_TRUE, np.array([[500.0, 500.0]]))[0])
    assert np.isnan(floor[1]).all()


def test_floor_points_map_back_to_their_pixels_and_the_local_scale_matches_a_small_step() -> None:
    img = image_points(8)
    cal = Calibration(image_points_px=img.tolist(), floor_points_m=project(H_TRUE, img).tolist())
    projection = calibrate_camera(CameraConfig(id="cam-x", source="sim://x", calibration=cal))
    probe = image_points(5, seed=2)
    floor, _ = projection.to_floor(probe)
    assert np.allclose(projection.to_image(floor), probe, atol=1e-6)
    # Pixels per metre: a 1 px square around each point covers 1 / scale^2 square metres of floor.
    corners = [probe + d for d in ([0, 0], [1, 0], [1, 1], [0, 1])]
    xy = np.stack([projection.to_floor(c)[0] for c in corners], axis=1)
    area = 0.5 * np.abs(
        (xy[:, :, 0] * np.roll(xy[:, :, 1], -1, axis=1) - np.roll(xy[:, :, 0], -1, axis=1) * xy[:, :, 1]).sum(
            1
        )
    )
    assert np.allclose(projection.px_per_metre(probe), 1 / np.sqrt(area), rtol=0.01)


def test_the_example_store_calibrates_and_skips_the_view_check_without_frame_sizes() -> None:
    from pathlib import Path

    from edge.config import load_config

    config = load_config(Path(__file__).resolve().parents[2] / "examples" / "showroom-shanghai-01.yaml")
    projections = calibrate_node(config)
    assert set(projections) == {"cam-west", "cam-centre", "cam-east"}
    assert all(
        p.error_m < p_cam.calibration.max_error_m
        for p, p_cam in zip(projections.values(), config.cameras, strict=True)
    )
    assert all(p.view_m is None for p in projections.values())  # no resolution_wh: views unknown


# ---------------------------------------------------------------------------------------------------
# The calibration check: each pair against a fit of the others
# ---------------------------------------------------------------------------------------------------


def test_two_of_six_marks_a_metre_off_are_rejected_though_the_robust_fit_looks_fine() -> None:
    """The incident: the robust fit keeps 4 of 6 marks (a fit through 4 is exact), reports 0.000 m and
    puts people metres off. Each pair judged by a fit of the others cannot pass it."""
    from edge.floor.calibration_check import check_calibration

    img = image_points(6, seed=7)
    floor = project(H_TRUE, img)
    floor[1] += (1.0, 0.2)
    floor[4] += (-0.3, 0.95)
    cal = Calibration(image_points_px=img.tolist(), floor_points_m=floor.tolist())
    _, error_m, _ = fit_homography(cal)
    report = check_calibration(cal, camera_id="cam-a")
    print(f"robust fit's own error {error_m:.3f} m; held-out max {report.held_out_max_m:.2f} m")
    assert error_m < 0.1  # what the node's fit alone says: fine
    assert report.verdict == "reject"
    assert {1, 4} <= set(report.rejected_pairs)


def test_exact_marks_pass_with_every_held_out_error_near_zero() -> None:
    from edge.floor.calibration_check import check_calibration

    img = image_points(8)
    cal = Calibration(image_points_px=img.tolist(), floor_points_m=project(H_TRUE, img).tolist())
    report = check_calibration(cal, camera_id="cam-a", resolution_wh=(1920, 1080), floor_size_m=(60, 60))
    assert report.verdict == "ok", report.problems + report.warnings
    assert report.held_out_max_m is not None and report.held_out_max_m < 1e-3


def _config_with_a_wrong_pair(tmp_path: Path) -> Path:
    data = yaml.safe_load((REPO / "examples" / "pets09.yaml").read_text())
    data["cameras"][0]["calibration"]["floor_points_m"][5][0] += 1.0  # one mark measured a metre off
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_check_config_fails_naming_the_wrong_pair(tmp_path: Path) -> None:
    from edge.cli import edge_group

    result = CliRunner().invoke(edge_group, ["check-config", str(_config_with_a_wrong_pair(tmp_path))])
    print(result.output)
    assert result.exit_code == 1
    assert "cameras[0].calibration[5]: camera 'view-1': pair 5" in result.output
    assert "REJECTED (calibration[5])" in result.output

    ok = CliRunner().invoke(edge_group, ["check-config", str(REPO / "examples" / "pets09.yaml")])
    assert ok.exit_code == 0 and "calibration view-1: 12 pairs" in ok.output and ": OK" in ok.output


def test_the_node_check_refuses_the_wrong_pair_too(tmp_path: Path) -> None:
    from edge.config import load_config
    from edge.node.runtime import NodeRuntime

    config_file = _config_with_a_wrong_pair(tmp_path)
    runtime = NodeRuntime(load_config(config_file), config_path=config_file)
    with pytest.raises(ConfigError) as err:
        runtime.check()
    assert [p for p, _ in err.value.problems] == ["cameras[0].calibration[5]"]


def test_a_camera_that_sees_above_the_horizon_still_puts_people_on_the_floor() -> None:
    """The CAVIAR shop front (a real scene, calibrated from itself): the top rows of the image are above
    the horizon, so the homography's scale is negative at pixel (0, 0). Points on the gallery floor must
    still project onto it, and points above the horizon must not."""
    config = load_config(Path(__file__).resolve().parents[2] / "examples" / "caviar-front.yaml")
    projection = calibrate_node(config)["front"]
    assert projection.homography[2, 2] < 0  # pixel (0, 0) lies beyond the horizon
    calibration = config.cameras[0].calibration
    assert calibration is not None
    marks_px = np.asarray(calibration.image_points_px, dtype=np.float64)
    floor, ok = projection.to_floor(marks_px)
    assert ok.all()
    assert np.abs(floor - np.asarray(calibration.floor_points_m)).max() < 0.1
    _, above = projection.to_floor([[192.0, 2.0]])  # top of the image: the atrium's far wall and roof
    assert not above.any()
