"""Run a detector over a video file and write MOTChallenge detection rows.

Decoding runs in a background thread (OpenCV releases the GIL while it decodes), so decoding the next
frame overlaps with inference on the current one.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from vision_models.arrays import UInt8Image
from vision_models.detections import Detections, Detector

log = logging.getLogger(__name__)


class VideoError(RuntimeError):
    """A video file cannot be opened or read."""


def video_frame_count(path: Path) -> int:
    """Frame count the container declares (0 when unknown)."""
    cap = cv2.VideoCapture(str(path))
    try:
        return max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0) if cap.isOpened() else 0
    finally:
        cap.release()


def read_frames(path: Path, *, prefetch: int = 4) -> Iterator[UInt8Image]:
    """BGR frames of a video file, decoded ahead in a background thread.

    Raises:
        VideoError: the file does not exist or OpenCV cannot open it.
    """
    if not path.is_file():
        raise VideoError(f"video file not found: {path}")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoError(f"cannot open video {path} (unsupported container or codec?)")
    frames: queue.Queue[UInt8Image | None] = queue.Queue(maxsize=max(prefetch, 1))
    stop = threading.Event()

    def decode() -> None:
        try:
            while not stop.is_set():
                ok, frame = cap.read()
                if not ok:
                    break
                frames.put(np.asarray(frame, dtype=np.uint8))
        finally:
            frames.put(None)

    thread = threading.Thread(target=decode, name="video-decode", daemon=True)
    thread.start()
    try:
        while (frame := frames.get()) is not None:
            yield frame
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                frames.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
        cap.release()


def mot_rows(frame_number: int, detections: Detections) -> str:
    """MOTChallenge detection rows `frame,-1,x,y,w,h,score,-1,-1,-1` (frame numbers from 1), one per box."""
    if len(detections) == 0:
        return ""
    xyxy = detections.xyxy
    wh = xyxy[:, 2:] - xyxy[:, :2]
    return "".join(
        f"{frame_number},-1,{x:.2f},{y:.2f},{w:.2f},{h:.2f},{s:.4f},-1,-1,-1\n"
        for (x, y), (w, h), s in zip(
            xyxy[:, :2].tolist(), wh.tolist(), detections.confidence.tolist(), strict=True
        )
    )


@dataclass(frozen=True)
class VideoDetectionSummary:
    frames: int
    detections: int


def detect_video(
    detector: Detector,
    video: Path,
    out: TextIO,
    *,
    on_frame: Callable[[int], None] | None = None,
) -> VideoDetectionSummary:
    """Detect people in every frame of `video`, writing MOTChallenge rows to `out`."""
    frames = boxes = 0
    for frames, frame in enumerate(read_frames(video), start=1):
        detections = detector.detect(frame)
        boxes += len(detections)
        out.write(mot_rows(frames, detections))
        if on_frame is not None:
            on_frame(frames)
    return VideoDetectionSummary(frames=frames, detections=boxes)


def detect_frames(detector: Detector, video: Path, *, max_frames: int | None = None) -> dict[int, Detections]:
    """Detections of the first `max_frames` frames of `video` (all when None), by frame number from 1."""
    result: dict[int, Detections] = {}
    for number, frame in enumerate(read_frames(video), start=1):
        if max_frames is not None and number > max_frames:
            break
        result[number] = detector.detect(frame)
    return result
