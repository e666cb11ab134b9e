"""Person detector on real models and real footage: bad frames, batches, box scaling, accuracy floor."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vision_models.detections import Detections, Detector
from vision_models.detector import OnnxDetector, load_detector
from vision_models.evaluation import evaluate, load_mot_ground_truth
from vision_models.registry import MODELS
from vision_models.video import read_frames

GT_SCALE = 480 / 768  # ground truth is in 768x576 pixels, the video is 480x360


@pytest.fixture(scope="module")
def rtmdet() -> OnnxDetector:
    return load_detector("rtmdet-nano-person", input_size_wh=(480, 384))


@pytest.fixture(scope="module")
def yolox() -> OnnxDetector:
    return load_detector("yolox-nano")


@pytest.fixture(scope="module")
def pets_frames() -> list[np.ndarray]:
    """Every 16th frame of PETS09-S2L1 (frame numbers 1, 17, 33, ...)."""
    video = Path(__file__).resolve().parents[3] / "shared" / "data" / "pets09_s2l1" / "vtest_480x360.avi"
    return [f for i, f in enumerate(read_frames(video)) if i % 16 == 0]


def test_detector_protocol_and_identity(rtmdet: OnnxDetector) -> None:
    assert isinstance(rtmdet, Detector)
    assert rtmdet.model_id == "rtmdet-nano-person"
    assert rtmdet.sha256 in MODELS["rtmdet-nano-person"].sha256
    assert rtmdet.input_size_wh == (480, 384)


@pytest.mark.parametrize("name", ["rtmdet", "yolox"])
def test_people_found_with_boxes_in_original_pixels(
    name: str, request: pytest.FixtureRequest, pets_frames: list[np.ndarray]
) -> None:
    detector: OnnxDetector = request.getfixturevalue(name)
    frame = pets_frames[0]
    small = detector.detect(frame)
    assert len(small) >= 3 and small.resolution_wh == (480, 360)
    big = detector.detect(cv2.resize(frame, (960, 720)))  # same scene at twice the size
    assert big.resolution_wh == (960, 720)
    # Each box in the small frame has a box of twice its coordinates in the big one.
    for box in small.xyxy[small.confidence > 0.5]:
        assert np.abs(big.xyxy - 2 * box).max(axis=1).min() < 6.0


@pytest.mark.parametrize("name", ["rtmdet", "yolox"])
def test_bad_frames_give_empty_results_not_crashes(name: str, request: pytest.FixtureRequest) -> None:
    detector: OnnxDetector = request.getfixturevalue(name)
    before = detector.stats.rejected_frames
    usable = {
        "grey": np.full((360, 480, 3), 128, np.uint8),
        "black": np.zeros((720, 1280, 3), np.uint8),
        "one pixel": np.full((1, 1, 3), 200, np.uint8),
        "thin": np.full((3, 1000, 3), 90, np.uint8),
        "tall": np.full((999, 7, 3), 90, np.uint8),
        "single channel": np.full((240, 320), 128, np.uint8),
        "single channel 3d": np.full((240, 320, 1), 128, np.uint8),
        "bgra": np.full((240, 320, 4), 128, np.uint8),
    }
    for label, frame in usable.items():
        result = detector.detect(frame)
        assert isinstance(result, Detections), label
        assert len(result) == 0, label
        assert result.resolution_wh == (frame.shape[1], frame.shape[0]), label
    unusable = [
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((360, 0, 3), np.uint8),
        np.zeros((360, 480, 2), np.uint8),
        np.zeros((360, 480, 3), np.float32),
        np.zeros((2, 360, 480, 3), np.uint8),
        None,
    ]
    for frame in unusable:
        result = detector.detect(frame)  # type: ignore[arg-type]
        assert isinstance(result, Detections) and len(result) == 0
    assert detector.stats.rejected_frames - before == len(unusable)


@pytest.mark.parametrize("name", ["rtmdet", "yolox"])
def test_batch_equals_single_for_frames_of_different_sizes(
    name: str, request: pytest.FixtureRequest, pets_frames: list[np.ndarray]
) -> None:
    detector: OnnxDetector = request.getfixturevalue(name)
    frames = [
        pets_frames[3],
        cv2.resize(pets_frames[10], (1280, 720)),
        np.zeros((0, 0, 3), np.uint8),
        pets_frames[20][40:300, 60:420],
        pets_frames[40],
    ]
    batch = detector.detect_batch(frames)
    assert detector.last_timings.frames == len(frames)
    single = [detector.detect(f) for f in frames]
    assert len(batch) == len(single)
    for b, s in zip(batch, single, strict=True):
        assert b.resolution_wh == s.resolution_wh
        assert len(b) == len(s)
        np.testing.assert_allclose(b.xyxy, s.xyxy, atol=0.05)
        np.testing.assert_allclose(b.confidence, s.confidence, atol=1e-3)
    assert sum(len(b) for b in batch) >= 8


def test_stage_timings_are_recorded(rtmdet: OnnxDetector, pets_frames: list[np.ndarray]) -> None:
    rtmdet.stats.reset()
    for frame in pets_frames[:5]:
        rtmdet.detect(frame)
    t = rtmdet.last_timings
    assert t.frames == 1 and t.infer_ms > 0 and t.pre_ms > 0 and t.post_ms > 0
    assert rtmdet.stats.frames == 5 and rtmdet.stats.calls == 5
    mean = rtmdet.stats.per_frame_ms()
    assert mean.total_ms == pytest.approx(
        (rtmdet.stats.pre_ms + rtmdet.stats.infer_ms + rtmdet.stats.post_ms) / 5
    )


def test_rectangular_input_for_wide_cameras(pets_frames: list[np.ndarray]) -> None:
    wide = cv2.copyMakeBorder(pets_frames[0], 0, 0, 80, 80, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    detector = load_detector("rtmdet-nano-person", input_size_wh=(640, 384))
    result = detector.detect(wide)
    assert result.resolution_wh == (640, 360) and len(result) >= 3


@pytest.mark.parametrize(("name", "floor"), [("rtmdet", 0.90), ("yolox", 0.85)])
def test_ap50_floor_on_pets_subset(
    name: str, floor: float, request: pytest.FixtureRequest, pets_dir: Path, pets_frames: list[np.ndarray]
) -> None:
    detector: OnnxDetector = request.getfixturevalue(name)
    low = load_detector(
        detector.model_id, input_size_wh=detector.input_size_wh, score_threshold=0.05, threads=2
    )
    truth = load_mot_ground_truth(pets_dir / "gt.txt", scale=GT_SCALE)
    numbers = [1 + 16 * i for i in range(len(pets_frames))]
    detections = dict(zip(numbers, low.detect_batch(pets_frames), strict=True))
    report = evaluate(detections, truth, frames=numbers, score_threshold=0.3)
    print(f"\n{detector.model_id} {low.input_size_wh}: {report.summary()}")
    assert report.ap50 >= floor
    assert report.recall >= 0.85


def test_default_model_meets_the_ap50_target_on_the_whole_clip(pets_dir: Path) -> None:
    """The registry's default model at its default input size: AP50 >= 0.93 over all 795 frames (~25 s)."""
    detector = load_detector(score_threshold=0.05, threads=2)
    truth = load_mot_ground_truth(pets_dir / "gt.txt", scale=GT_SCALE)
    detections = {n: detector.detect(f) for n, f in enumerate(read_frames(pets_dir / "vtest_480x360.avi"), 1)}
    assert len(detections) == 795
    report = evaluate(detections, truth, score_threshold=0.3)
    print(f"\n{detector.model_id} {detector.input_size_wh}: {report.summary()}")
    assert report.ap50 >= 0.93
