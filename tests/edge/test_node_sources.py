"""Camera sources and their health: pacing, looping, failures, frozen, covered, moved, quality."""

from __future__ import annotations

import itertools
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from node_testkit import RtspCamera

from edge.config import CameraConfig
from edge.node.sources import (
    Backoff,
    CameraMonitor,
    CameraReader,
    FrameQueue,
    HealthRules,
    OpenCvSource,
    SourceGoneError,
    connection_quality,
    source_kind,
    ssim,
    thumbnail,
)
from edge.sources import CameraFrame

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def pets_frames(pets_dir: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(pets_dir / "vtest_480x360.avi"))
    frames = []
    for _ in range(n):
        ok, image = cap.read()
        assert ok
        frames.append(image)
    cap.release()
    return frames


def short_clip(pets_dir: Path, path: Path, n: int = 12, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (480, 360))
    for image in pets_frames(pets_dir, n):
        writer.write(image)
    writer.release()
    return path


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def frame_of(image: np.ndarray, i: int) -> CameraFrame:
    return CameraFrame("cam", START + timedelta(seconds=i), i, image_bgr=image)


def test_source_kinds() -> None:
    assert [source_kind(s) for s in ("rtsp://h/x", "http://h/x.mjpg", "usb:0", "/v.mp4", "file:v.avi")] == [
        "rtsp",
        "http",
        "usb",
        "file",
        "file",
    ]
    assert source_kind("sim://store?seed=1") == "sim"


def test_file_is_sampled_at_the_camera_fps_in_media_time(pets_dir: Path) -> None:
    camera = CameraConfig(id="cam", source=str(pets_dir / "vtest_480x360.avi"), fps=5)
    source = OpenCvSource(camera, start_utc=START, realtime=False)
    frames = []
    for frame in source.frames():
        frames.append(frame)
        if len(frames) == 20:
            source.close()
    steps = {round((b.ts_utc - a.ts_utc).total_seconds(), 3) for a, b in itertools.pairwise(frames)}
    assert steps == {0.2}  # the clip is 10 fps: every other frame, 0.2 s apart
    assert frames[0].ts_utc == START and [f.index for f in frames] == list(range(20))
    assert frames[0].image_bgr is not None and frames[0].image_bgr.shape == (360, 480, 3)


def test_looped_file_keeps_its_clock_running_and_a_file_played_once_ends(
    pets_dir: Path, tmp_path: Path
) -> None:
    clip = short_clip(pets_dir, tmp_path / "clip.avi", n=12)
    looped = OpenCvSource(
        CameraConfig(id="cam", source=str(clip), fps=10, loop=True), start_utc=START, realtime=False
    )
    frames = []
    for frame in looped.frames():
        frames.append(frame)
        if len(frames) == 30:
            looped.close()
    times = [(f.ts_utc - START).total_seconds() for f in frames]
    assert times == pytest.approx([i * 0.1 for i in range(30)], abs=1e-3)
    once = OpenCvSource(
        CameraConfig(id="cam", source=f"file:{clip}", fps=10), start_utc=START, realtime=False
    )
    assert len(list(once.frames())) == 12


def test_resolution_is_brought_to_the_calibrated_size(pets_dir: Path) -> None:
    camera = CameraConfig(id="cam", source=str(pets_dir / "vtest_480x360.avi"), resolution_wh=(640, 480))
    source = OpenCvSource(camera, start_utc=START, realtime=False)
    first = next(iter(source.frames()))
    source.close()
    assert first.image_bgr is not None and first.image_bgr.shape == (480, 640, 3)


def test_realtime_file_is_not_released_faster_than_real_time(pets_dir: Path) -> None:
    camera = CameraConfig(id="cam", source=str(pets_dir / "vtest_480x360.avi"), fps=10)
    source = OpenCvSource(camera, start_utc=START, realtime=True)
    t0 = time.monotonic()
    for frame in source.frames():
        if frame.index == 10:
            source.close()
    assert time.monotonic() - t0 >= 0.95


def test_missing_file_fails_for_good_and_the_reader_reports_it(tmp_path: Path) -> None:
    camera = CameraConfig(id="gone", source=str(tmp_path / "nope.mp4"))
    with pytest.raises(SourceGoneError, match="does not exist"):
        next(iter(OpenCvSource(camera).frames()))
    monitor = CameraMonitor(camera)
    reader = CameraReader(camera, OpenCvSource, FrameQueue(), monitor, backoff=Backoff(0.05, 0.1))
    reader.start()
    time.sleep(0.5)
    reader.stop()
    assert reader.join(2)
    snap = monitor.snapshot()
    assert snap.state == "failed" and "does not exist" in (snap.detail or "")
    assert snap.reconnects >= 2 and snap.quality == "unusable"


def test_unreachable_stream_is_retried_with_backoff(tmp_path: Path) -> None:
    camera = CameraConfig(id="door", source="rtsp://127.0.0.1:9/nothing-here")
    monitor = CameraMonitor(camera)
    reader = CameraReader(
        camera, lambda c: OpenCvSource(c, open_timeout_s=1), FrameQueue(), monitor, backoff=Backoff(0.05, 0.2)
    )
    reader.start()
    time.sleep(1.0)
    reader.stop()
    assert reader.join(5)
    snap = monitor.snapshot()
    assert snap.state == "connecting" and snap.reconnects >= 2
    assert "cannot open" in (snap.detail or "")


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    backoff, rng = Backoff(1.0, 30.0), random.Random(3)
    delays = [[backoff.delay_s(n, rng) for _ in range(200)] for n in range(8)]
    assert all(1.0 <= d <= min(30.0, 2**n) for n, ds in enumerate(delays) for d in ds)
    assert max(delays[7]) > 20 and len({round(d, 3) for d in delays[3]}) > 100  # capped, and jittered


def test_frame_queue_drops_the_oldest() -> None:
    queue = FrameQueue(2)
    image = np.zeros((4, 4, 3), np.uint8)
    dropped = sum(queue.put(frame_of(image, i)) for i in range(5))
    assert dropped == 3 and len(queue) == 2
    assert [queue.get().index, queue.get().index] == [3, 4]  # type: ignore[union-attr]
    assert queue.get() is None


def test_connection_quality_grades() -> None:
    assert connection_quality(5.0, 5.0, 0, 0) == "excellent"
    assert connection_quality(4.0, 5.0, 0, 0) == "fair"
    assert connection_quality(5.0, 5.0, 1, 0) == "fair"
    assert connection_quality(2.0, 5.0, 0, 0) == "poor"
    assert connection_quality(5.0, 5.0, 5, 3) == "poor"
    assert connection_quality(1.0, 5.0, 0, 0) == "unusable"
    assert connection_quality(0.0, 5.0, 0, 0) == "unusable"


def feed(
    monitor: CameraMonitor, clock: FakeClock, images: list[np.ndarray], seconds: float, fps: float = 5
) -> None:
    n = int(seconds * fps)
    for i in range(n):
        clock.now += 1 / fps
        monitor.record_frame(frame_of(images[i % len(images)], i))


def test_healthy_camera_is_ok_and_excellent(pets_dir: Path) -> None:
    clock, images = FakeClock(), pets_frames(pets_dir, 60)
    monitor = CameraMonitor(CameraConfig(id="cam", source="x.mp4", fps=5), clock=clock)
    feed(monitor, clock, images, 12)
    snap = monitor.snapshot()
    assert (snap.state, snap.quality) == ("ok", "excellent")
    assert snap.fps == pytest.approx(5.0, rel=0.05)


def test_stall_is_reported_and_counts_against_quality(pets_dir: Path) -> None:
    clock, images = FakeClock(), pets_frames(pets_dir, 60)
    rules = HealthRules(stall_after_s=3)
    monitor = CameraMonitor(CameraConfig(id="cam", source="x.mp4", fps=5), rules, clock=clock)
    feed(monitor, clock, images, 5)
    clock.now += 4
    snap = monitor.snapshot()
    assert snap.state == "stalled" and snap.fps == 0 and snap.quality == "unusable"
    feed(monitor, clock, images, 12)
    snap = monitor.snapshot()
    assert snap.state == "ok" and snap.quality == "fair"  # one stall in the last hour


def test_frozen_image_is_reported(pets_dir: Path) -> None:
    clock, image = FakeClock(), pets_frames(pets_dir, 1)[0]
    monitor = CameraMonitor(
        CameraConfig(id="cam", source="x.mp4"), HealthRules(frozen_after_s=5), clock=clock
    )
    feed(monitor, clock, [image], 4)
    assert monitor.snapshot().state == "ok"
    feed(monitor, clock, [image], 4)
    snap = monitor.snapshot()
    assert snap.state == "stalled" and "frozen" in (snap.detail or "")


def test_covered_lens_is_reported_and_clears(pets_dir: Path) -> None:
    clock, images = FakeClock(), pets_frames(pets_dir, 60)
    monitor = CameraMonitor(
        CameraConfig(id="cam", source="x.mp4"), HealthRules(covered_after_s=3), clock=clock
    )
    feed(monitor, clock, images, 3)
    rng = np.random.default_rng(0)
    dark = [np.clip(rng.normal(8, 3, (360, 480, 3)), 0, 255).astype(np.uint8) for _ in range(5)]
    feed(monitor, clock, dark, 5)
    assert monitor.snapshot().state == "covered"
    feed(monitor, clock, images, 3)
    assert monitor.snapshot().state == "ok"


def test_moved_camera_is_told_from_people_walking_by(pets_dir: Path, tmp_path: Path) -> None:
    clock, images = FakeClock(), pets_frames(pets_dir, 120)
    reference = tmp_path / "ref" / "cam.png"
    camera = CameraConfig(id="cam", source="x.mp4", reference_image=reference)
    monitor = CameraMonitor(camera, HealthRules(moved_after_s=5), clock=clock)
    feed(monitor, clock, images, 20)  # 20 s of people walking through the scene
    assert reference.is_file()  # the first frame became the commissioning reference, saved on the box
    assert monitor.snapshot().state == "ok" and monitor.last_ssim is not None and monitor.last_ssim > 0.6
    # The camera is knocked: the view shifts by 15% and turns a little.
    turn = cv2.getRotationMatrix2D((240, 180), 8, 1.0)
    turn[0, 2] += 70
    moved = [cv2.warpAffine(im, turn, (480, 360), borderMode=cv2.BORDER_REFLECT) for im in images]
    feed(monitor, clock, moved, 8)
    snap = monitor.snapshot()
    assert snap.state == "moved" and "SSIM" in (snap.detail or "")
    # A restarted node loads the saved reference and still sees the move.
    again = CameraMonitor(camera, HealthRules(moved_after_s=5), clock=clock)
    feed(again, clock, moved, 8)
    assert again.snapshot().state == "moved"


def test_ssim_is_one_for_identical_and_low_for_unrelated_images(pets_dir: Path) -> None:
    a = thumbnail(pets_frames(pets_dir, 1)[0])
    noise = np.random.default_rng(1).uniform(0, 255, a.shape).astype(np.float32)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-4)
    assert ssim(a, noise) < 0.2


def _wait(cond: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_rtsp_camera_is_read_live_at_its_fps_and_calibrated_size() -> None:
    """A real RTSP H.264 stream (10 fps, 640x360) read at the camera's 5 fps, brought to 480x270."""
    with RtspCamera(640, 360, 10) as cam:
        camera = CameraConfig(id="door", source=cam.url, fps=5, resolution_wh=(480, 270))
        source = OpenCvSource(camera, open_timeout_s=10)
        frames: list[CameraFrame] = []
        started = None
        for frame in source.frames():
            frames.append(frame)
            started = started or time.monotonic()
            if time.monotonic() - started >= 3.0:
                break
        source.close()
    assert all(f.image_bgr is not None and f.image_bgr.shape == (270, 480, 3) for f in frames)
    assert 12 <= len(frames) - 1 <= 17, len(frames)  # 5 fps over 3 s, not the stream's 10
    gaps = [(b.ts_utc - a.ts_utc).total_seconds() for a, b in itertools.pairwise(frames)]
    assert min(gaps) >= 0.15 and [f.index for f in frames] == list(range(len(frames)))
    assert float(np.std(frames[-1].image_bgr)) > 10  # a picture, not a blank frame


def test_rtsp_camera_that_drops_off_the_network_is_reconnected() -> None:
    with RtspCamera(640, 360, 10) as cam:
        camera = CameraConfig(id="door", source=cam.url, fps=5)
        monitor = CameraMonitor(camera)
        reader = CameraReader(
            camera,
            lambda c: OpenCvSource(c, open_timeout_s=3, read_timeout_s=2),
            FrameQueue(),
            monitor,
            backoff=Backoff(0.2, 0.5),
        )
        reader.start()
        try:
            assert _wait(lambda: monitor.snapshot().frames_total >= 10, 20), monitor.snapshot()
            assert monitor.snapshot().state == "ok"
            cam.stop()
            assert _wait(lambda: monitor.snapshot().state == "connecting", 20), monitor.snapshot()
            lost = monitor.snapshot()
            assert lost.reconnects >= 1 and lost.quality == "unusable"
            assert "stopped delivering frames" in (lost.detail or "") or "cannot open" in (lost.detail or "")
            frames_then = lost.frames_total
            cam.start()
            assert _wait(lambda: monitor.snapshot().frames_total >= frames_then + 10, 30), monitor.snapshot()
        finally:
            reader.stop()
            assert reader.join(10)
    back = monitor.snapshot()
    assert back.state == "ok" and back.frames_total >= frames_then + 10, back
    print(f"\nRTSP reconnect: {back.reconnects} reconnects, quality {back.quality}, detail {back.detail!r}")
