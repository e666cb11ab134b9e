"""`showroom models`: list, detect (MOTChallenge rows), and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from showroom.cli import main
from vision_models.video import read_frames

SHOWROOM = Path(sys.executable).with_name("showroom")
CLIP_FRAMES = 12


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first frames of PETS09-S2L1 re-encoded as a short MJPG clip."""
    video = Path(__file__).resolve().parents[3] / "shared" / "data" / "pets09_s2l1" / "vtest_480x360.avi"
    out = tmp_path_factory.mktemp("clip") / "clip.avi"
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"MJPG"), 7.0, (480, 360))
    for i, frame in enumerate(read_frames(video)):
        if i == CLIP_FRAMES:
            break
        writer.write(frame)
    writer.release()
    return out


def test_list_shows_each_model_presence_and_licence(model_dir: Path) -> None:
    result = CliRunner().invoke(main, ["models", "list"])
    assert result.exit_code == 0, result.output
    assert "rtmdet-nano-person (default): verified" in result.output
    assert "yolox-nano: verified" in result.output
    assert "person-reid-0288: verified; reid, input 128x256 (fixed), 256-value embedding" in result.output
    assert "licence Apache-2.0" in result.output
    assert str(model_dir) in result.output


def test_list_flags_a_missing_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOWROOM_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("SHOWROOM_CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(main, ["models", "list"])
    assert result.exit_code == 0
    assert "yolox-nano: missing" in result.output


@pytest.mark.parametrize(("model", "size"), [("rtmdet-nano-person", "480x384"), ("yolox-nano", None)])
def test_detect_writes_valid_mot_rows(short_clip: Path, tmp_path: Path, model: str, size: str | None) -> None:
    out = tmp_path / "det.txt"
    args = ["models", "detect", str(short_clip), "--model", model, "--out", str(out), "--no-progress"]
    if size:
        args += ["--input-size", size]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = np.loadtxt(out, delimiter=",", ndmin=2)
    assert rows.shape[1] == 10
    frames = rows[:, 0].astype(int)
    assert frames.min() == 1 and frames.max() == CLIP_FRAMES and np.all(np.diff(frames) >= 0)
    assert np.all(rows[:, 1] == -1) and np.all(rows[:, 7:] == -1)
    x, y, w, h, score = rows[:, 2], rows[:, 3], rows[:, 4], rows[:, 5], rows[:, 6]
    assert np.all(w > 0) and np.all(h > 0)
    assert np.all(x >= 0) and np.all(y >= 0) and np.all(x + w <= 480.01) and np.all(y + h <= 360.01)
    assert np.all((score >= 0.3) & (score <= 1))
    assert len(rows) >= 3 * CLIP_FRAMES  # at least three people per frame in this scene
    assert f"{CLIP_FRAMES} frames" in result.output


def test_detect_errors_are_clear(short_clip: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(
        main, ["models", "detect", str(tmp_path / "nope.avi"), "--out", str(tmp_path / "o")]
    )
    assert missing.exit_code == 1 and "video file not found" in missing.output
    bad_model = runner.invoke(main, ["models", "detect", str(short_clip), "--model", "x", "--out", "o.txt"])
    assert bad_model.exit_code == 1 and "unknown model id 'x'" in bad_model.output
    bad_size = runner.invoke(main, ["models", "detect", str(short_clip), "--input-size", "big", "--out", "o"])
    assert bad_size.exit_code == 2 and "WIDTHxHEIGHT" in bad_size.output
    args = ["models", "detect", str(short_clip), "--model", "person-reid-0288", "--out", str(tmp_path / "o")]
    not_a_detector = runner.invoke(main, args)
    assert (
        not_a_detector.exit_code == 1
        and "re-identification model, not a person detector" in not_a_detector.output
    )
    quantize_reid = ["models", "quantize", "person-reid-0288", "--calibration", str(short_clip)]
    not_quantised = runner.invoke(main, quantize_reid)
    assert not_quantised.exit_code == 1 and "quantisation is for the person detectors" in not_quantised.output


def test_console_script_has_models_group() -> None:
    result = subprocess.run(
        [str(SHOWROOM), "models", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    for command in ("list", "fetch", "detect", "quantize"):
        assert command in result.stdout


def test_quantize_then_detect_with_the_int8_variant(
    short_clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: `models quantize` writes a verified INT8 variant into the cache; `models list` shows it
    and `models detect --model ID-int8` finds people with it."""
    monkeypatch.setenv("SHOWROOM_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()
    made = runner.invoke(
        main, ["models", "quantize", "rtmdet-nano-person", "--calibration", str(short_clip), "--frames", "4"]
    )
    assert made.exit_code == 0, made.output
    int8_file = tmp_path / "cache" / "models" / "rtmdet_nano_person_int8.onnx"
    assert int8_file.is_file() and f"rtmdet-nano-person-int8: {int8_file}" in made.output
    listed = runner.invoke(main, ["models", "list"])
    assert "rtmdet-nano-person-int8: verified" in listed.output, listed.output
    out = tmp_path / "det.txt"
    args = ["--model", "rtmdet-nano-person-int8", "--out", str(out), "--no-progress"]
    detected = runner.invoke(main, ["models", "detect", str(short_clip), *args])
    assert detected.exit_code == 0, detected.output
    rows = np.loadtxt(out, delimiter=",", ndmin=2)
    assert set(rows[:, 0].astype(int)) == set(range(1, CLIP_FRAMES + 1))
    assert len(rows) >= 3 * CLIP_FRAMES  # at least three people per frame, as with the float model


EVALUATE_FRAMES = 50
PETS09_GT_SCALE = 480 / 768  # gt.txt is in the original 768x576 pixels; the clip is 480x360


def test_evaluate_reports_ap50_precision_recall_on_pets09(pets_dir: Path) -> None:
    """RTMDet-nano at its default 544x416 on PETS09-S2L1's first 50 frames against the independent ground
    truth. Measured: AP50 0.896, precision 0.792, recall 0.919 (whole clip: AP50 0.935, BENCHMARKS.md).
    Asserted: AP50 >= 0.85, recall >= 0.85, precision >= 0.70."""
    args = ["models", "evaluate", "rtmdet-nano-person", "--video", str(pets_dir / "vtest_480x360.avi")]
    args += [
        "--gt",
        str(pets_dir / "gt.txt"),
        "--scale",
        str(PETS09_GT_SCALE),
        "--frames",
        str(EVALUATE_FRAMES),
    ]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    print(f"\nrtmdet-nano-person 544x416, PETS09-S2L1 frames 1-{EVALUATE_FRAMES}: {report}")
    assert report["frames"] == EVALUATE_FRAMES and report["input_size_wh"] == [544, 416]
    assert report["ground_truth"] > 4 * EVALUATE_FRAMES  # 4 to 8 people per frame
    assert report["ap50"] >= 0.85
    assert report["recall"] >= 0.85 and report["precision"] >= 0.70
    text = CliRunner().invoke(main, args)
    assert text.exit_code == 0, text.output
    counts = f"({report['true_positives']} TP, {report['false_positives']} FP, {report['ground_truth']} GT"
    assert "rtmdet-nano-person 544x416 on vtest_480x360.avi: AP50 0." in text.output
    assert f"{counts}, {EVALUATE_FRAMES} frames)" in text.output


def test_evaluate_errors_are_clear(pets_dir: Path, tmp_path: Path) -> None:
    video = str(pets_dir / "vtest_480x360.avi")
    missing_gt = CliRunner().invoke(
        main, ["models", "evaluate", "yolox-nano", "--video", video, "--gt", "no.txt"]
    )
    assert missing_gt.exit_code == 1 and "ground truth no.txt" in missing_gt.output
    bad = CliRunner().invoke(
        main, ["models", "evaluate", "nope", "--video", video, "--gt", str(pets_dir / "gt.txt")]
    )
    assert bad.exit_code == 1 and "unknown model id 'nope'" in bad.output
