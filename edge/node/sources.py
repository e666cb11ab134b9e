"""Cameras: opening each kind of source, pacing it, reconnecting it, and judging its health.

Kinds, by the camera's `source`: `rtsp://` and `http(s)://` streams, `usb:N` devices, video files (a path,
`file:` prefix optional; looped or played once) through OpenCV, and the simulated showroom (`sim://`, which
yields detections instead of images). Each camera runs in its own reader thread (`CameraReader`), hands
frames over through a bounded queue that drops the oldest frame rather than fall behind (`FrameQueue`),
and keeps its health in a `CameraMonitor`: fps, drops, reconnects, stalls, a frozen image, a covered or black
lens, a view that no longer matches the commissioning reference (the camera was moved), and a connection
quality in Frigate's four grades.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from edge.config import CameraConfig, NodeConfig
from edge.events import ConnectionQuality
from edge.sources import CameraFrame, FrameSource

log = logging.getLogger(__name__)

CameraState = Literal["ok", "connecting", "stalled", "ended", "failed", "covered", "moved"]
SourceKind = Literal["rtsp", "http", "usb", "file", "sim"]


class SourceError(RuntimeError):
    """A camera that cannot be opened or stopped delivering; the reader reconnects after a backoff."""


class SourceGoneError(SourceError):
    """A camera that cannot come back by retrying (a video file that does not exist)."""


def source_kind(source: str) -> SourceKind:
    """Which kind of source a camera's `source` string names."""
    lowered = source.lower()
    if lowered.startswith("sim://"):
        return "sim"
    if lowered.startswith(("rtsp://", "rtsps://")):
        return "rtsp"
    if lowered.startswith(("http://", "https://")):
        return "http"
    if lowered.startswith("usb:"):
        return "usb"
    return "file"


# ---------------------------------------------------------------------------------------------------
# OpenCV sources
# ---------------------------------------------------------------------------------------------------


class OpenCvSource:
    """A camera read through OpenCV (FFmpeg backend for files and streams, V4L2 for USB).

    Files are read in media time: frames are sampled at the camera's target fps, stamped `start_utc` plus
    their media time (looping continues the clock) and, when `realtime`, released no faster than real
    time. Live streams are read as fast as they come (so no stale frames pile up in the decoder) and a
    frame is kept whenever 1 / fps has passed since the last one kept, stamped with the clock.

    Raises `SourceError` from `frames()` when the source cannot be opened or stops delivering, and
    `SourceGoneError` for a file that does not exist.
    """

    def __init__(
        self,
        camera: CameraConfig,
        *,
        start_utc: datetime | None = None,
        realtime: bool = True,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
    ) -> None:
        self.camera_id = camera.id
        self.camera = camera
        self.kind = source_kind(camera.source)
        if self.kind == "sim":
            raise ValueError(f"camera {camera.id}: sim:// sources are opened by open_source, not OpenCV")
        self.start_utc = start_utc or datetime.now(UTC)
        self.realtime = realtime
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self._cap: cv2.VideoCapture | None = None
        self._closed = threading.Event()
        self._index = 0
        self._media_offset_s = 0.0  # media time of the loops already played

    def _open(self) -> cv2.VideoCapture:
        source = self.camera.source
        if self.kind == "usb":
            try:
                device = int(source.split(":", 1)[1])
            except ValueError as exc:
                raise SourceGoneError(f"camera {self.camera_id}: {source!r} is not usb:N") from exc
            cap = cv2.VideoCapture(device)
        else:
            target = source.removeprefix("file:") if self.kind == "file" else source
            if self.kind == "file" and not Path(target).is_file():
                raise SourceGoneError(f"camera {self.camera_id}: video file {target!r} does not exist")
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                int(self.open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                int(self.read_timeout_s * 1000),
            ]
            cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"camera {self.camera_id}: cannot open {self._redacted()}")
        return cap

    def _redacted(self) -> str:
        """The source URL without any password it carries (never logged)."""
        source = self.camera.source
        if "://" in source and "@" in source:
            scheme, rest = source.split("://", 1)
            return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        return source

    def frames(self) -> Iterator[CameraFrame]:
        self._cap = self._open()
        try:
            if self.kind == "file":
                yield from self._file_frames(self._cap)
            else:
                yield from self._live_frames(self._cap)
        finally:
            self._cap.release()
            self._cap = None

    def _resized(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        want = self.camera.resolution_wh
        if want is not None and (image.shape[1], image.shape[0]) != tuple(want):
            return np.asarray(cv2.resize(image, want, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        return image

    def _file_frames(self, cap: cv2.VideoCapture) -> Iterator[CameraFrame]:
        native_fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        if not 0 < native_fps <= 240:
            native_fps = self.camera.fps
        step_s = 1.0 / self.camera.fps
        wall_start = time.monotonic()
        next_media_s = 0.0
        file_index = 0
        last_media_s = 0.0
        while not self._closed.is_set():
            ok = cap.grab()
            if not ok:
                if self._index == 0 and file_index == 0:
                    raise SourceError(f"camera {self.camera_id}: {self._redacted()} has no readable frames")
                if not self.camera.loop:
                    return
                self._media_offset_s += last_media_s + 1.0 / native_fps
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                next_media_s -= last_media_s + 1.0 / native_fps
                file_index = 0
                continue
            media_s = file_index / native_fps
            file_index += 1
            last_media_s = media_s
            if media_s + 1e-6 < next_media_s:
                continue  # sample the file at the camera's fps
            ok, image = cap.retrieve()
            if not ok or image is None:
                continue
            next_media_s += step_s
            clock_s = self._media_offset_s + media_s
            if self.realtime:
                delay = wall_start + clock_s - time.monotonic()
                if delay > 0 and self._closed.wait(delay):
                    return
            yield CameraFrame(
                self.camera_id,
                self.start_utc + timedelta(seconds=clock_s),
                self._index,
                image_bgr=self._resized(np.asarray(image, dtype=np.uint8)),
            )
            self._index += 1

    def _live_frames(self, cap: cv2.VideoCapture) -> Iterator[CameraFrame]:
        step_s = 1.0 / self.camera.fps
        last_kept = -1e9
        while not self._closed.is_set():
            ok = cap.grab()
            if not ok:
                raise SourceError(f"camera {self.camera_id}: {self._redacted()} stopped delivering frames")
            now = time.monotonic()
            if now - last_kept < step_s * 0.95:
                continue
            ok, image = cap.retrieve()
            if not ok or image is None:
                raise SourceError(f"camera {self.camera_id}: cannot decode a frame of {self._redacted()}")
            last_kept = now
            yield CameraFrame(
                self.camera_id,
                datetime.now(UTC),
                self._index,
                image_bgr=self._resized(np.asarray(image, dtype=np.uint8)),
            )
            self._index += 1

    def close(self) -> None:
        self._closed.set()


def open_source(
    camera: CameraConfig,
    config: NodeConfig,
    *,
    start_utc: datetime | None = None,
    realtime: bool = True,
) -> FrameSource:
    """The frame source for one camera: OpenCV for real cameras and files, the simulator for `sim://`."""
    if source_kind(camera.source) == "sim":
        # Imported only when a camera needs it: a real node does not carry the simulator's weight.
        from edge.sim.source import open_sim_source

        source: FrameSource = open_sim_source(
            camera.source, camera, config=config, start_utc=start_utc, realtime=realtime
        )
        return source
    return OpenCvSource(camera, start_utc=start_utc, realtime=realtime)


# ---------------------------------------------------------------------------------------------------
# Frame hand-over
# ---------------------------------------------------------------------------------------------------


class FrameQueue:
    """A bounded queue of one camera's frames.

    Live (`drop_oldest=True`, the default): a full queue drops its OLDEST frame, so a slow node analyses
    the newest frames and counts what it skipped. Replay (`drop_oldest=False`): a full queue makes the
    reader wait, so a recorded video is analysed frame by frame, as fast as the node can.
    """

    def __init__(self, maxlen: int = 2, *, drop_oldest: bool = True) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, got {maxlen}")
        self._frames: deque[CameraFrame] = deque()
        self.maxlen = maxlen
        self.drop_oldest = drop_oldest
        self._cond = threading.Condition()

    def put(self, frame: CameraFrame, stop: threading.Event | None = None) -> int:
        """Add a frame; returns how many old frames were dropped to make room (0 or 1)."""
        with self._cond:
            dropped = 0
            while len(self._frames) >= self.maxlen:
                if self.drop_oldest:
                    self._frames.popleft()
                    dropped += 1
                elif stop is not None and stop.is_set():
                    return 0
                else:
                    self._cond.wait(0.1)
            self._frames.append(frame)
            return dropped

    def get(self) -> CameraFrame | None:
        with self._cond:
            frame = self._frames.popleft() if self._frames else None
            self._cond.notify_all()
            return frame

    def __len__(self) -> int:
        with self._cond:
            return len(self._frames)


# ---------------------------------------------------------------------------------------------------
# Health
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthRules:
    """When a camera counts as stalled, frozen, covered or moved (seconds are of continuous condition)."""

    stall_after_s: float = 10.0
    frozen_after_s: float = 20.0
    frozen_max_diff: float = 0.6
    """Mean absolute grey-level change between checks below which the image counts as unchanged."""
    covered_after_s: float = 5.0
    covered_max_mean: float = 25.0
    covered_max_std: float = 12.0
    moved_after_s: float = 30.0
    moved_min_ssim: float = 0.45
    """Structural similarity to the reference below which the view counts as changed."""
    check_every_s: float = 1.0
    fps_window_s: float = 10.0


def connection_quality(
    fps: float, target_fps: float, reconnects_last_hour: int, stalls_last_hour: int
) -> ConnectionQuality:
    """Frigate's grades from the delivered-to-expected fps ratio, reconnects and stalls in the last hour.

    excellent: >= 90% of the fps, no reconnect, no stall; fair: >= 60%, at most 2 reconnects and 2 stalls;
    poor: >= 30%, at most 10 of each; unusable otherwise (or no frames at all).
    """
    if fps <= 0 or target_fps <= 0:
        return "unusable"
    ratio = fps / target_fps
    if ratio >= 0.9 and reconnects_last_hour == 0 and stalls_last_hour == 0:
        return "excellent"
    if ratio >= 0.6 and reconnects_last_hour <= 2 and stalls_last_hour <= 2:
        return "fair"
    if ratio >= 0.3 and reconnects_last_hour <= 10 and stalls_last_hour <= 10:
        return "poor"
    return "unusable"


_THUMB_WH = (160, 90)


def thumbnail(image_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """A small grey float32 copy (160x90) for the health checks; never leaves the box."""
    grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    return np.asarray(cv2.resize(grey, _THUMB_WH, interpolation=cv2.INTER_AREA), dtype=np.float32)


def ssim(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    """Mean structural similarity (Wang et al. 2004, Gaussian window 7, sigma 1.5) of two grey images."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return np.asarray(cv2.GaussianBlur(x, (7, 7), 1.5), dtype=np.float32)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


class CameraMonitor:
    """One camera's health, fed by its reader and the runtime, read by the heartbeat.

    Thread-safe. `clock` is a monotonic clock in seconds (injectable for tests of the time rules).
    """

    def __init__(
        self,
        camera: CameraConfig,
        rules: HealthRules | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.camera = camera
        self.rules = rules or HealthRules()
        self._clock = clock
        self._lock = threading.Lock()
        self._frame_times: deque[float] = deque()
        self._reconnect_times: deque[float] = deque()
        self._stall_times: deque[float] = deque()
        self.frames_total = 0
        self.dropped_frames = 0
        self.reconnects = 0
        self.inference_ms = 0.0
        self._link: CameraState = "connecting"  # what the reader says: connecting, ok, ended, failed
        self._detail: str | None = None
        self._last_frame_at: float | None = None
        self._stalled = False
        self._last_check_at = -1e9
        self._last_thumb: npt.NDArray[np.float32] | None = None
        self._reference: npt.NDArray[np.float32] | None = None
        self._since: dict[str, float | None] = {"frozen": None, "covered": None, "moved": None}
        self.last_ssim: float | None = None
        self._load_reference()

    # -- reference view ------------------------------------------------------------------------------

    def _load_reference(self) -> None:
        path = self.camera.reference_image
        if path is None or not path.is_file():
            return
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("camera %s: unreadable reference %s; using the first frame", self.camera.id, path)
            return
        self._reference = thumbnail(np.asarray(image, dtype=np.uint8))

    def _adopt_reference(self, image: npt.NDArray[np.uint8], thumb: npt.NDArray[np.float32]) -> None:
        self._reference = thumb
        path = self.camera.reference_image
        if path is not None and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), image)
            log.info("camera %s: saved the commissioning reference view to %s", self.camera.id, path)

    # -- events from the reader ------------------------------------------------------------------------

    def set_link(self, state: CameraState, detail: str | None = None) -> None:
        with self._lock:
            self._link = state
            self._detail = detail

    def record_reconnect(self, detail: str) -> None:
        with self._lock:
            self.reconnects += 1
            self._reconnect_times.append(self._clock())
            self._link = "connecting"
            self._detail = detail[:200]

    def record_drops(self, n: int) -> None:
        if n:
            with self._lock:
                self.dropped_frames += n

    def record_inference_ms(self, ms: float) -> None:
        with self._lock:
            self.inference_ms = ms if self.inference_ms == 0 else 0.8 * self.inference_ms + 0.2 * ms

    def seconds_since_frame(self) -> float | None:
        """Seconds since the latest frame arrived; None before the first."""
        with self._lock:
            return None if self._last_frame_at is None else self._clock() - self._last_frame_at

    def record_frame(self, frame: CameraFrame) -> None:
        """A frame arrived: count it and, about once a second, run the image checks on it."""
        now = self._clock()
        with self._lock:
            self.frames_total += 1
            self._frame_times.append(now)
            self._last_frame_at = now
            self._stalled = False
            if self._link != "ok":
                self._link, self._detail = "ok", None
            due = now - self._last_check_at >= self.rules.check_every_s
        if frame.image_bgr is not None and due:
            self._check_image(frame.image_bgr, now)

    def _check_image(self, image: npt.NDArray[np.uint8], now: float) -> None:
        thumb = thumbnail(image)
        rules = self.rules
        covered = float(thumb.mean()) < rules.covered_max_mean and float(thumb.std()) < rules.covered_max_std
        frozen = self._last_thumb is not None and float(np.abs(thumb - self._last_thumb).mean()) < (
            rules.frozen_max_diff
        )
        moved = False
        with self._lock:
            self._last_check_at = now
            self._last_thumb = thumb
            if self._reference is None and not covered:
                self._adopt_reference(image, thumb)
            if self._reference is not None and not covered:
                self.last_ssim = ssim(thumb, self._reference)
                moved = self.last_ssim < rules.moved_min_ssim
            for name, condition in (("frozen", frozen), ("covered", covered), ("moved", moved)):
                if not condition:
                    self._since[name] = None
                elif self._since[name] is None:
                    self._since[name] = now

    # -- reading ---------------------------------------------------------------------------------------

    def _held(self, name: str, now: float, after_s: float) -> bool:
        since = self._since[name]
        return since is not None and now - since >= after_s

    def _trim(self, now: float) -> None:
        for times, keep_s in (
            (self._frame_times, self.rules.fps_window_s),
            (self._reconnect_times, 3600.0),
            (self._stall_times, 3600.0),
        ):
            while times and now - times[0] > keep_s:
                times.popleft()

    def snapshot(self) -> CameraSnapshot:
        """The camera's health now (also notes a new stall, so call it regularly)."""
        now = self._clock()
        rules = self.rules
        with self._lock:
            self._trim(now)
            silent_s = None if self._last_frame_at is None else now - self._last_frame_at
            stall_limit = max(rules.stall_after_s, 3.0 / self.camera.fps)
            if self._link == "ok" and silent_s is not None and silent_s > stall_limit and not self._stalled:
                self._stalled = True
                self._stall_times.append(now)
            first = self._frame_times[0] if self._frame_times else None
            span = min(rules.fps_window_s, now - first) if first is not None else 0.0
            fps = (len(self._frame_times) - 1) / span if span > 0.5 and len(self._frame_times) > 1 else 0.0
            if silent_s is not None and silent_s > stall_limit:
                fps = 0.0
            state, detail = self._link, self._detail
            if state == "ok":
                if self._stalled:
                    state, detail = "stalled", f"no frame for {silent_s:.0f} s"
                elif self._held("covered", now, rules.covered_after_s):
                    state, detail = "covered", "image dark and featureless: lens covered or no light"
                elif self._held("frozen", now, rules.frozen_after_s):
                    state, detail = "stalled", "image frozen: frames arrive but do not change"
                elif self._held("moved", now, rules.moved_after_s):
                    state = "moved"
                    detail = f"view differs from the commissioning reference (SSIM {self.last_ssim:.2f})"
            quality = connection_quality(
                fps if state in ("ok", "covered", "moved") else 0.0,
                self.camera.fps,
                len(self._reconnect_times),
                len(self._stall_times),
            )
            return CameraSnapshot(
                camera_id=self.camera.id,
                state=state,
                detail=detail,
                fps=round(min(fps, 240.0), 2),
                target_fps=self.camera.fps,
                inference_ms=round(self.inference_ms, 2),
                dropped_frames=self.dropped_frames,
                reconnects=self.reconnects,
                quality=quality,
                frames_total=self.frames_total,
            )


@dataclass(frozen=True)
class CameraSnapshot:
    camera_id: str
    state: CameraState
    detail: str | None
    fps: float
    target_fps: float
    inference_ms: float
    dropped_frames: int
    reconnects: int
    quality: ConnectionQuality
    frames_total: int


# ---------------------------------------------------------------------------------------------------
# The reader thread
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(base, min(cap, base * 2**n))."""

    base_s: float = 1.0
    cap_s: float = 60.0

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        high = min(self.cap_s, self.base_s * (2 ** min(attempt, 20)))
        return rng.uniform(self.base_s, max(self.base_s, high))


SourceFactory = Callable[[CameraConfig], FrameSource]


class CameraReader:
    """Runs one camera in its own thread: open, read into the queue, reconnect with backoff, never crash.

    A file that ends (without loop) ends the reader with state `ended`; a source that cannot exist
    (`SourceGoneError`) is retried at the backoff's cap with state `failed`; anything else is reconnected.
    """

    def __init__(
        self,
        camera: CameraConfig,
        factory: SourceFactory,
        queue: FrameQueue,
        monitor: CameraMonitor,
        *,
        backoff: Backoff | None = None,
        on_frame: Callable[[], None] | None = None,
        seed: int | None = None,
    ) -> None:
        self.camera = camera
        self.factory = factory
        self.queue = queue
        self.monitor = monitor
        self.backoff = backoff or Backoff()
        self.on_frame = on_frame
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._source: FrameSource | None = None
        self._thread = threading.Thread(target=self._run, name=f"camera-{camera.id}", daemon=True)
        self._delivered = 0
        self.ended = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            self._delivered = 0
            try:
                self._source = self.factory(self.camera)
                self._pump(self._source)
                if not self._stop.is_set():
                    self.monitor.set_link("ended", "video ended")
                    log.info("camera %s: source ended after %d frames", self.camera.id, self._delivered)
                    self.ended.set()
                return
            except SourceGoneError as exc:
                self.monitor.record_reconnect(str(exc))
                self.monitor.set_link("failed", str(exc)[:200])
                delay = self.backoff.cap_s
                log.error("%s; retrying in %.0f s", exc, delay)
            except Exception as exc:  # a camera must never take the node down
                if self._delivered:
                    attempt = 0  # it worked for a while: start the backoff again from the bottom
                self.monitor.record_reconnect(str(exc))
                delay = self.backoff.delay_s(attempt, self._rng)
                log.warning("%s; reconnecting in %.1f s", exc, delay)
            finally:
                if self._source is not None:
                    self._source.close()
                    self._source = None
            attempt += 1
            if self._stop.wait(delay):
                break

    def _pump(self, source: FrameSource) -> None:
        for frame in source.frames():
            if self._stop.is_set():
                break
            self.monitor.record_frame(frame)
            self.monitor.record_drops(self.queue.put(frame, self._stop))
            self._delivered += 1
            if self.on_frame is not None:
                self.on_frame()

    def stop(self) -> None:
        self._stop.set()
        source = self._source
        if source is not None:
            source.close()

    def join(self, timeout_s: float) -> bool:
        self._thread.join(timeout_s)
        return not self._thread.is_alive()
