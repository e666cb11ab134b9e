"""`showroom hardware walk-test`: the installer walks the door a known number of times each way while the
node's real pipeline (detector, floor tracking, door counter) runs on its cameras, or on a recorded clip of
the walk; the node's crossings per direction are compared with what was walked.

Accuracy per direction is the figure door-counting vendors quote, `1 - |counted - expected| / expected`
(VergeSense's acceptance: about 100 crossings, pass at 95% or better); a direction expected 0 times passes
only when none was counted. The result is written as JSON (`--out`); `showroom aggregator audit import`
keeps it as an accuracy audit of the store (walked counts as the manual ones, the node's as the system's),
so it shows with the store's other audits.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import click
import numpy as np
import numpy.typing as npt

from edge import __version__
from edge.config import ConfigError, NodeConfig, load_config
from edge.cues.appearance import Embedder, load_embedder, with_appearance
from edge.events import EventStamper, IdSource
from edge.node.sources import CameraMonitor, CameraReader, FrameQueue, open_source
from edge.pipeline import EdgePipeline
from edge.sources import CameraFrame
from hardware.camera_probe import with_resolved_sources
from vision_models.detections import Detections, Detector
from vision_models.registry import ModelError

log = logging.getLogger(__name__)

PASS_AT = 0.95
RESULT_KIND = "showroom.walk-test.v1"
VIDEO_START = datetime(2026, 1, 1, tzinfo=UTC)
"""Media time zero of a replayed clip (analytics time comes from frame numbers, as in `edge track`)."""


def accuracy(counted: int, expected: int) -> float:
    """`1 - |counted - expected| / expected`, floored at 0; for `expected` 0: 1 if none counted, else 0."""
    if expected == 0:
        return 1.0 if counted == 0 else 0.0
    return max(0.0, 1.0 - abs(counted - expected) / expected)


@dataclass
class Crossings:
    """What the node counted: door crossings per (door, direction), over how many frames."""

    by_door: Counter[tuple[str, str]] = field(default_factory=Counter)
    frames: int = 0

    def total(self, direction: str) -> int:
        return sum(n for (_, d), n in self.by_door.items() if d == direction)

    def doors(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (door, direction), n in sorted(self.by_door.items()):
            out.setdefault(door, {"in": 0, "out": 0})[direction] = n
        return out


def _stamper(config: NodeConfig) -> EventStamper:
    return EventStamper(config.store_id, config.node_id, IdSource(0))  # seeded: a clip gives the same ids


def _models(config: NodeConfig) -> tuple[Detector, Embedder | None]:
    from vision_models.detector import load_detector  # ONNX Runtime: loaded when the test runs

    det = config.detector
    detector = load_detector(
        det.model, input_size_wh=det.input_size_wh, score_threshold=det.score_threshold, threads=det.threads
    )
    return detector, load_embedder(config)


def _detections(
    frames: list[CameraFrame], detector: Detector, embedder: Embedder | None
) -> dict[str, Detections]:
    """One time step's detections per camera: the frame's own (simulated cameras) or the detector's."""
    out = {f.camera_id: f.detections for f in frames if f.detections is not None}
    to_infer = [f for f in frames if f.detections is None and f.image_bgr is not None]
    images = [f.image_bgr for f in to_infer if f.image_bgr is not None]
    if images:
        for frame, result in zip(to_infer, detector.detect_batch(images), strict=True):
            if embedder is not None and frame.image_bgr is not None:
                result = with_appearance(result, frame.image_bgr, embedder)
            out[frame.camera_id] = result
    return out


def count_on_video(
    config: NodeConfig, config_file: Path, video: Path, camera_id: str, max_frames: int | None
) -> Crossings:
    """The node's pipeline on a recorded clip of camera `camera_id`, frame by frame (as `edge track`)."""
    from vision_models.video import read_frames

    pipeline = EdgePipeline(config, _stamper(config), source=str(config_file))
    detector, embedder = _models(config)
    fps = next(c.fps for c in config.cameras if c.id == camera_id)
    ts = VIDEO_START
    crossings = Crossings()
    for index, image in enumerate(read_frames(video)):
        if max_frames is not None and index >= max_frames:
            break
        ts = VIDEO_START + timedelta(seconds=index / fps)
        frame = CameraFrame(camera_id, ts, index, image_bgr=image)
        pipeline.process(ts, _detections([frame], detector, embedder), {camera_id: image})
        crossings.frames += 1
    pipeline.flush(ts + timedelta(seconds=1 / fps), "shutdown")
    crossings.by_door.update(pipeline.analytics.crossings)
    return crossings


def _live_steps(config: NodeConfig, seconds: float) -> Iterator[list[CameraFrame]]:
    """Time steps of the node's live cameras (one frame per camera that has one), for `seconds`."""
    queues = {cam.id: FrameQueue(2) for cam in config.cameras}
    readers = [
        CameraReader(cam, lambda c: open_source(c, config, realtime=True), queues[cam.id], CameraMonitor(cam))
        for cam in config.cameras
    ]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            batch = [f for q in queues.values() if (f := q.get()) is not None]
            if batch:
                yield batch
            elif all(r.ended.is_set() for r in readers):
                return
            else:
                time.sleep(0.01)
    finally:
        for reader in readers:
            reader.stop()
        for reader in readers:
            reader.join(5.0)


def count_live(config: NodeConfig, config_file: Path, minutes: float) -> Crossings:
    """The node's pipeline on its live cameras for `minutes`."""
    pipeline = EdgePipeline(config, _stamper(config), source=str(config_file))
    detector, embedder = _models(config)
    crossings = Crossings()
    last_ts: datetime | None = None
    for batch in _live_steps(with_resolved_sources(config, config_file), minutes * 60.0):
        ts = max(f.ts_utc for f in batch)
        if last_ts is not None and ts <= last_ts:
            ts = last_ts + timedelta(milliseconds=1)  # analytics time must move forward
        last_ts = ts
        images: dict[str, npt.NDArray[np.uint8]] = {
            f.camera_id: f.image_bgr for f in batch if f.image_bgr is not None
        }
        pipeline.process(ts, _detections(batch, detector, embedder), images or None)
        crossings.frames += len(batch)
    pipeline.flush(last_ts or datetime.now(UTC), "shutdown")
    crossings.by_door.update(pipeline.analytics.crossings)
    return crossings


def result_of(
    config: NodeConfig,
    crossings: Crossings,
    *,
    expected: dict[str, int],
    source: str,
    started_at: datetime,
    ended_at: datetime,
    installer: str,
) -> dict[str, Any]:
    """The walk test's result document (what `showroom aggregator audit import` reads)."""
    counted = {d: crossings.total(d) for d in ("in", "out")}
    acc = {d: round(accuracy(counted[d], expected[d]), 4) for d in ("in", "out")}
    return {
        "kind": RESULT_KIND,
        "store_id": config.store_id,
        "node_id": config.node_id,
        "source": source,
        "started_at": started_at.isoformat(timespec="seconds"),
        "ended_at": ended_at.isoformat(timespec="seconds"),
        "frames": crossings.frames,
        "expected": expected,
        "counted": counted,
        "doors": crossings.doors(),
        "accuracy": acc,
        "pass_at": PASS_AT,
        "passed": all(a >= PASS_AT for a in acc.values()),
        "installer": installer,
        "software_version": __version__,
    }


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(2)


@click.command("walk-test")
@click.option("--config", "config_file", required=True, type=click.Path(path_type=Path), help="Node config.")
@click.option("--expect-in", type=click.IntRange(0), required=True, help="Crossings walked inwards.")
@click.option("--expect-out", type=click.IntRange(0), required=True, help="Crossings walked outwards.")
@click.option(
    "--minutes",
    type=click.FloatRange(0, 240, min_open=True),
    help="How long to count on the live cameras (with --video: at most this much of the clip).",
)
@click.option(
    "--video",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Count on a recording of the walk instead of the live cameras.",
)
@click.option("--camera", "camera_id", help="With --video: the camera that recorded it (default: the first).")
@click.option("--max-frames", type=click.IntRange(1), help="With --video: stop after this many frames.")
@click.option("--out", type=click.Path(path_type=Path), help="Write the result (JSON) here.")
@click.option("--installer", default="installer", show_default=True, help="Who walked the test.")
def walk_test_command(
    config_file: Path,
    expect_in: int,
    expect_out: int,
    minutes: float | None,
    video: Path | None,
    camera_id: str | None,
    max_frames: int | None,
    out: Path | None,
    installer: str,
) -> None:
    """Count door crossings for a walked test and compare with what was walked: accuracy per direction,
    pass at 95%; exit 1 on fail. Store the result with `showroom aggregator audit import`."""
    try:
        config = load_config(config_file)
    except ConfigError as exc:
        _fail(str(exc))
    if video is None and minutes is None:
        _fail("give --minutes (how long to count on the live cameras) or --video (a recording of the walk)")
    started_at = datetime.now(UTC)
    try:
        if video is not None:
            ids = [c.id for c in config.cameras]
            camera = camera_id or ids[0]
            if camera not in ids:
                _fail(f"camera {camera!r} is not in the configuration ({', '.join(ids)})")
            fps = next(c.fps for c in config.cameras if c.id == camera)
            limit = None if minutes is None else int(minutes * 60 * fps)
            if max_frames is not None:
                limit = max_frames if limit is None else min(limit, max_frames)
            crossings = count_on_video(config, config_file, video, camera, limit)
            source = f"video {video.name} ({camera})"
        else:
            assert minutes is not None
            crossings = count_live(config, config_file, minutes)
            source = f"live, {len(config.cameras)} camera(s)"
    except ConfigError as exc:
        _fail(str(exc))
    except ModelError as exc:
        _fail(f"cannot load a model: {exc}")
    result = result_of(
        config,
        crossings,
        expected={"in": expect_in, "out": expect_out},
        source=source,
        started_at=started_at,
        ended_at=datetime.now(UTC),
        installer=installer,
    )
    for direction in ("in", "out"):
        walked, counted = result["expected"][direction], result["counted"][direction]
        pct = 100 * result["accuracy"][direction]
        click.echo(f"{direction:>3}: walked {walked}, counted {counted}, accuracy {pct:.1f}%")
    verdict = "PASS" if result["passed"] else "FAIL"
    click.echo(f"walk test {verdict} (pass at {PASS_AT:.0%} each way; {crossings.frames} frames, {source})")
    if out is not None:
        try:
            out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            _fail(f"cannot write {out}: {exc.strerror or exc}")
        click.echo(f"result written to {out}; keep it: `showroom aggregator audit import {out} --db ...`")
    if not result["passed"]:
        sys.exit(1)
