"""Offline run of the whole edge path on a video file: `showroom edge track VIDEO --config CFG`.

Time comes from the frame numbers (frame i is at `start + i / fps`, fps from the camera's configuration),
never from the clock, and visitor and event ids come from a seeded source: the same video and configuration
give byte-identical events.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import click
import numpy as np
import numpy.typing as npt

from edge.config import ConfigError, NodeConfig, load_config
from edge.cues.appearance import load_embedder, with_appearance
from edge.events import Envelope, EventStamper, IdSource, to_json
from edge.pipeline import EdgePipeline
from vision_models.detections import Detections

log = logging.getLogger(__name__)

DEFAULT_START = "2026-01-01T00:00:00Z"


def _parse_start(value: str) -> datetime:
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}") from exc
    if ts.tzinfo is None:
        raise click.BadParameter(f"give a time zone, e.g. {DEFAULT_START}")
    return ts.astimezone(UTC)


def _pick_camera(config: NodeConfig, camera_id: str | None) -> str:
    ids = [c.id for c in config.cameras]
    if camera_id is None:
        return ids[0]
    if camera_id not in ids:
        raise click.BadParameter(f"camera {camera_id!r} is not in the configuration ({', '.join(ids)})")
    return camera_id


def mot_row(frame_number: int, track_id: int, xyxy: Iterable[float], score: float) -> str:
    """One MOTChallenge row `frame,id,x,y,w,h,score,-1,-1,-1` (pixels)."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return f"{frame_number},{track_id},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{score:.4f},-1,-1,-1\n"


def mot_rows(pipeline: EdgePipeline, camera_id: str, frame_number: int) -> Iterator[str]:
    """MOTChallenge rows of the confirmed tracks the camera sees now, by track id."""
    for track_id, xyxy, score in sorted(pipeline.observed_tracks(camera_id), key=lambda r: r[0]):
        yield mot_row(frame_number, track_id, xyxy, score)


class GapFiller:
    """Offline only: boxes for the frames a track was hidden, interpolated once it is seen again.

    A track re-linked after at most `max_gap` frames gets linearly interpolated boxes (score 0) for the
    frames in between, as offline MOT evaluations usually do. Events are never affected.
    """

    def __init__(self, max_gap: int) -> None:
        self.max_gap = max_gap
        self._last: dict[int, tuple[int, npt.NDArray[np.float64]]] = {}

    def rows(self, pipeline: EdgePipeline, camera_id: str, frame_number: int) -> Iterator[str]:
        for track_id, xyxy, _ in sorted(pipeline.observed_tracks(camera_id), key=lambda r: r[0]):
            box = np.asarray(xyxy, dtype=np.float64)
            last = self._last.get(track_id)
            if last is not None and 1 < frame_number - last[0] <= self.max_gap:
                gap = frame_number - last[0]
                for k in range(1, gap):
                    yield mot_row(last[0] + k, track_id, last[1] + (box - last[1]) * k / gap, 0.0)
            self._last[track_id] = (frame_number, box)


def write_events(out: IO[bytes] | None, events: list[Envelope]) -> None:
    if out is not None:
        for event in events:
            out.write(to_json(event) + b"\n")


@click.command("track")
@click.argument("video", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--config", "config_file", required=True, type=click.Path(path_type=Path), help="Node config.")
@click.option("--camera", "camera_id", help="Camera the video comes from (default: the first).")
@click.option("--mot-out", type=click.Path(path_type=Path), help="Write MOTChallenge track rows here.")
@click.option("--events-out", type=click.Path(path_type=Path), help="Write contract events (JSON lines).")
@click.option("--start", default=DEFAULT_START, show_default=True, help="UTC time of the first frame.")
@click.option("--seed", default=0, show_default=True, help="Seed of the visitor and event ids.")
@click.option("--max-frames", type=int, help="Stop after this many frames.")
@click.option(
    "--interpolate-gaps",
    default=0,
    show_default=True,
    help="MOT output only: fill a re-linked track's hidden frames (up to this many) by interpolation.",
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def track_command(
    video: Path,
    config_file: Path,
    camera_id: str | None,
    mot_out: Path | None,
    events_out: Path | None,
    start: str,
    seed: int,
    max_frames: int | None,
    interpolate_gaps: int,
    progress: bool,
) -> None:
    """Detect, track and count people in VIDEO, as the edge node would, and write tracks and events."""
    from vision_models.detector import load_detector
    from vision_models.registry import ModelError
    from vision_models.video import read_frames, video_frame_count

    try:
        config = load_config(config_file)
        stamper = EventStamper(config.store_id, config.node_id, IdSource(seed))
        pipeline = EdgePipeline(config, stamper, source=str(config_file))
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    camera = _pick_camera(config, camera_id)
    fps = next(c.fps for c in config.cameras if c.id == camera)
    t0 = _parse_start(start)
    det_cfg = config.detector
    try:
        detector = load_detector(
            det_cfg.model,
            input_size_wh=det_cfg.input_size_wh,
            score_threshold=det_cfg.score_threshold,
            threads=det_cfg.threads,
        )
        embedder = load_embedder(config)
    except ModelError as exc:
        click.echo(f"cannot load a model: {exc}", err=True)
        sys.exit(1)
    total = video_frame_count(video) or None
    if max_frames is not None:
        total = min(total or max_frames, max_frames)
    mot = mot_out.open("w", encoding="utf-8") if mot_out else None
    events = events_out.open("wb") if events_out else None
    counts: dict[str, int] = {}
    filler = GapFiller(interpolate_gaps) if interpolate_gaps > 1 else None
    ts = t0
    try:
        frames = read_frames(video)
        with click.progressbar(
            length=total or 0, label="tracking", file=sys.stderr, hidden=not progress
        ) as bar:
            for index, frame in enumerate(frames):
                if max_frames is not None and index >= max_frames:
                    break
                ts = t0 + timedelta(seconds=index / fps)
                detections: Detections = detector.detect(frame)
                if embedder is not None:
                    detections = with_appearance(detections, frame, embedder)
                produced = pipeline.process(ts, {camera: detections}, {camera: frame})
                write_events(events, produced)
                for event in produced:
                    counts[event.type] = counts.get(event.type, 0) + 1
                if mot is not None:
                    mot.writelines(mot_rows(pipeline, camera, index + 1))
                    if filler is not None:
                        mot.writelines(filler.rows(pipeline, camera, index + 1))
                bar.update(1)
        final = pipeline.flush(ts + timedelta(seconds=1 / fps), "shutdown")
        write_events(events, final)
        for event in final:
            counts[event.type] = counts.get(event.type, 0) + 1
    finally:
        if mot is not None:
            mot.close()
        if events is not None:
            events.close()
    crossings = ", ".join(f"{door} {d}: {n}" for (door, d), n in sorted(pipeline.analytics.crossings.items()))
    click.echo(f"frames: {pipeline.stats.steps}; door crossings: {crossings or 'none'}")
    click.echo("events: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
    rejected = {k: v for k, v in pipeline.stats.as_dict().items() if v and k not in ("steps", "detections")}
    click.echo(
        f"input: {pipeline.stats.detections} detections; "
        + ", ".join(f"{k} {v}" for k, v in rejected.items())
    )
