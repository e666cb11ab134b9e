"""Tracking and counting accuracy on PETS09-S2L1, against peer trackers on identical detections, and speed.

    .venv/bin/python bench/bench_tracking.py [--json bench/results/tracking.json] [--input-size 544x416]
        [--reid] [--reid-config KEY=VALUE ...] [--only-ours] [--frames A-B]
        [--video V --gt gt.txt --config node.yaml [--gt-scale S]]

1. Detections: RTMDet-nano (480x384 input by default, the size of the peers' reference figures;
   `--input-size 544x416` for the product's default since 2026-11-23; score >= 0.1) on every frame of the
   clip, computed once and cached (bench/.cache). Every tracker below gets exactly these detections.
2. Ours: `EdgePipeline` with examples/pets09.yaml (floor calibration, door line at x = 384 of 768).
   Peers: supervision ByteTrack, the `trackers` package (SORT, ByteTrack, OC-SORT, BoT-SORT), norfair; each
   with its defaults and frame_rate = 7 (the sequence's rate).
3. Scores: TrackEval HOTA, CLEAR (MOTA, ID switches) and Identity (IDF1), MOTChallenge protocol; door-line
   counts per direction (ground truth 14 left-to-right, 18 right-to-left): ours from the product's floor door
   counter, and for every tracker from its boxes' bottom centres crossing the image line; the image-line
   harness counts every tracker's boxes on five vertical and three horizontal lines, each direction, with its
   total and worst error against the ground truth's boxes.
4. Speed: tracker + analytics per frame with 20 people walking in view (synthetic detections), ms.
5. `--reid`: ours again with on-box re-identification (`tracker.reid: {}`, the product's defaults), the
   detections embedding their boxes on the tracker's request from the clip's real frames (re-read while
   tracking, aligned with the detections by index), as `showroom edge track` does. Each `--reid-config
   KEY=VALUE ...` (repeatable) adds a run with those `tracker.reid` fields. Besides the scores: boxes
   embedded per frame and re-identification wall ms per frame. `--only-ours` skips the peer trackers.
6. `--frames A-B` (1-based, inclusive): every tracker still runs on the whole clip, from its first frame, but
   only frames A-B are scored: the ground truth and every tracker's output are cut to that range, and the
   door and line counts are the crossings made in it. So a tuning range and a held-out range of one clip are
   scored on the same continuous run.
7. Any other clip with MOTChallenge ground truth: `--video V --gt gt.txt --config node.yaml` (its first
   camera; frame rate from the config), `--gt-scale S` from the ground truth's pixels to the video's
   (default 0.625 for PETS09's gt.txt, 1 for any other). Door counts per direction, when the config has doors:
   ours from the product's door counter, every peer and the ground truth from their boxes' bottom centres
   projected to the floor with the config's calibration and counted by the product's `DoorCounter`.
   PETS09's five-line harness and the speed figure run for the PETS09 clip only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import repeat
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from mot_eval import GT_SCALE, Rows, evaluate, gt_tracks, line_crossings  # noqa: E402
from pets_detections import CACHE, PETS_DIR, VIDEO, make_detector, pets_detections  # noqa: E402

from edge.analytics.door import DoorCounter  # noqa: E402
from edge.config import NodeConfig, ReidConfig, load_config, parse_config  # noqa: E402
from edge.cues.appearance import EmbedTimer, load_embedder, with_appearance  # noqa: E402
from edge.events import EventStamper, IdSource  # noqa: E402
from edge.floor.calibration import calibrate_node  # noqa: E402
from edge.offline import GapFiller  # noqa: E402
from edge.pipeline import EdgePipeline  # noqa: E402
from vision_models.detections import Detections  # noqa: E402

FPS = 7.0
INTERPOLATE_GAPS = 10
CONFIG = HERE.parent / "examples" / "pets09.yaml"
GT = PETS_DIR / "gt.txt"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Clip:
    """What a run scores: a video, its MOTChallenge ground truth and the node config that tracks it."""

    video: Path
    gt: Path
    config: Path
    gt_scale: float = GT_SCALE
    """Ground-truth pixels to the video's pixels."""
    fps: float = FPS
    frames: tuple[int, int] | None = None
    """First and last frame scored (1-based, inclusive); None: every frame."""

    @property
    def is_pets(self) -> bool:
        """The PETS09-S2L1 clip and ground truth (its line harness and header apply)."""
        return self.video.resolve() == VIDEO.resolve() and self.gt.resolve() == GT.resolve()

    def span(self, n: int) -> tuple[int, int]:
        """(first, last) frame scored of a clip of `n` frames."""
        first, last = self.frames or (1, n)
        if last > n:
            raise SystemExit(f"--frames {first}-{last}: the clip has {n} frames")
        return first, last


PETS = Clip(VIDEO, GT, CONFIG)


def parse_frames(text: str) -> tuple[int, int]:
    """`"401-795"` -> `(401, 795)`: first and last frame, 1-based and inclusive."""
    first, sep, last = text.partition("-")
    try:
        span = (int(first), int(last))
    except ValueError:
        span = (0, 0)
    if not sep or span[0] < 1 or span[1] < span[0]:
        raise SystemExit(f"--frames: expected A-B with 1 <= A <= B, got {text!r}")
    return span


def cut(rows: Rows, first: int, last: int) -> Rows:
    """The rows of frames `first` to `last` only."""
    return {f: r for f, r in rows.items() if first <= f <= last}


def xywh(xyxy: np.ndarray) -> np.ndarray:
    return np.array([xyxy[0], xyxy[1], xyxy[2] - xyxy[0], xyxy[3] - xyxy[1]], dtype=np.float64)


def ours_config(reid: dict[str, Any] | None = None, path: Path = CONFIG) -> NodeConfig:
    """The node config (examples/pets09.yaml by default), with `tracker.reid` set to `reid` when given (`{}`:
    the product's defaults)."""
    if reid is None:
        return load_config(path)
    import yaml

    data = yaml.safe_load(path.read_text())
    data["tracker"] = {**(data.get("tracker") or {}), "reid": reid}
    return parse_config(data, f"{path} + tracker.reid {reid}")


def clip_detections(clip: Clip, input_wh: tuple[int, int]) -> list[Detections]:
    """RTMDet-nano detections (score >= 0.1) of every frame of the clip, cached under bench/.cache; the
    PETS09 clip's are `pets_detections`'."""
    if clip.video.resolve() == VIDEO.resolve():
        return pets_detections(input_wh)
    import hashlib

    import cv2

    tag = hashlib.sha1(str(clip.video.resolve()).encode()).hexdigest()[:8]
    path = CACHE / f"{clip.video.stem}_{tag}_rtmdet_{input_wh[0]}x{input_wh[1]}_s0.10.npz"
    if path.exists():
        data = np.load(path)
        resolution = (int(data["resolution_wh"][0]), int(data["resolution_wh"][1]))
        ends = np.cumsum(data["counts"])
        return [
            Detections(data["boxes"][e - c : e], data["scores"][e - c : e], resolution)
            for c, e in zip(data["counts"], ends, strict=True)
        ]
    detector = make_detector(input_wh, 0.1)
    cap = cv2.VideoCapture(str(clip.video))  # sequential decoding: seeking is inexact on some files
    out: list[Detections] = []
    resolution = (0, 0)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        resolution = (frame.shape[1], frame.shape[0])
        out.append(detector.detect(frame))
    cap.release()
    if not out:
        raise SystemExit(f"--video {clip.video}: no frame could be decoded")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        counts=np.array([len(d) for d in out]),
        boxes=np.concatenate([d.xyxy for d in out]).reshape(-1, 4),
        scores=np.concatenate([d.confidence for d in out]),
        resolution_wh=np.array(resolution),
    )
    return out


class OursRun(NamedTuple):
    rows: Rows
    filled: Rows
    """`rows` with hidden frames interpolated offline (gaps up to INTERPOLATE_GAPS frames)."""
    counts: dict[str, int]
    """Product door counter crossings by direction ("in" = left to right, "out" = right to left)."""
    crossings: list[dict[tuple[str, str], int]]
    """Product door counter crossings by (door id, direction) after each frame (index 0: before the first;
    the last entry includes the final flush), to count the crossings of a range of frames."""
    ms: float
    """Wall ms per frame of `EdgePipeline.process` (re-identification included when on)."""
    embedded_per_frame: float = 0.0
    reid_ms: float = 0.0
    """Wall ms per frame spent embedding boxes (part of `ms`)."""


def run_ours(dets: list[Detections], reid: dict[str, Any] | None = None, clip: Clip = PETS) -> OursRun:
    """Our pipeline over `dets`; with `reid` (a `tracker.reid` mapping), the boxes are embedded on request
    from the clip's frames, decoded again here one at a time (frame i belongs to detections i)."""
    config = ours_config(reid, clip.config)
    pipeline = EdgePipeline(config, EventStamper(config.store_id, config.node_id, IdSource(0)))
    camera = config.cameras[0].id
    embedder = load_embedder(config)
    timer = EmbedTimer()
    frames: Iterable[npt.NDArray[np.uint8] | None] = repeat(None)
    if embedder is not None:
        from vision_models.video import read_frames

        frames = read_frames(clip.video)
    crossings: list[dict[tuple[str, str], int]] = [{}]
    rows: Rows = defaultdict(list)
    filled: Rows = defaultdict(list)
    filler = GapFiller(INTERPOLATE_GAPS)
    elapsed = 0.0
    # strict: the video must have exactly one frame per detections entry, or the boxes would be cropped
    # from the wrong frame
    for i, (d, frame) in enumerate(zip(dets, frames, strict=embedder is not None)):
        start = time.perf_counter()
        if embedder is not None and frame is not None:
            d = with_appearance(d, frame, embedder, timer)
            pipeline.process(T0 + timedelta(seconds=i / clip.fps), {camera: d}, {camera: frame})
        else:
            pipeline.process(T0 + timedelta(seconds=i / clip.fps), {camera: d})
        elapsed += time.perf_counter() - start
        crossings.append(dict(pipeline.analytics.crossings))
        for tid, box, _ in pipeline.observed_tracks(camera):
            rows[i + 1].append((tid, xywh(box)))
            filled[i + 1].append((tid, xywh(box)))
        for line in filler.rows(pipeline, camera, i + 1):
            f, tid, x, y, w, h = line.split(",")[:6]
            filled[int(f)].append((int(tid), np.array([float(x), float(y), float(w), float(h)])))
    pipeline.flush(T0 + timedelta(seconds=len(dets) / clip.fps))
    crossings[-1] = dict(pipeline.analytics.crossings)
    counts: dict[str, int] = {direction: n for (_, direction), n in pipeline.analytics.crossings.items()}
    if embedder is not None and timer.boxes != pipeline.stats.embedded_boxes:
        raise RuntimeError(
            f"embedding count mismatch: timer {timer.boxes}, pipeline {pipeline.stats.embedded_boxes}"
        )
    n = len(dets)
    return OursRun(
        rows, filled, counts, crossings, 1000 * elapsed / n, timer.boxes / n, 1000 * timer.seconds / n
    )


def crossings_in(run: OursRun, first: int, last: int) -> dict[tuple[str, str], int]:
    """The product door counter's crossings by (door id, direction) made in frames `first` to `last`."""
    after, before = run.crossings[last], run.crossings[first - 1]
    return {key: n - before.get(key, 0) for key, n in after.items()}


def floor_door_counts(rows: Rows, config: NodeConfig) -> dict[str, tuple[int, int]]:
    """(in, out) crossings per door of the config by the rows' boxes: bottom centres projected to the floor
    with the config's first camera, counted by the product's `DoorCounter` (its line and hysteresis)."""
    projection = calibrate_node(config)[config.cameras[0].id]
    counters = [DoorCounter(door) for door in config.doors]
    for frame in sorted(rows):
        if not rows[frame]:
            continue
        feet = [(b[0] + b[2] / 2, b[1] + b[3]) for _, b in rows[frame]]
        floor, valid = projection.to_floor(feet)
        for (tid, _), xy, ok in zip(rows[frame], floor, valid, strict=True):
            if ok:
                for counter in counters:
                    counter.observe(tid, (float(xy[0]), float(xy[1])))
    return {c.door.id: (c.counts["in"], c.counts["out"]) for c in counters}


def frames_changed(a: Rows, b: Rows, n: int) -> int:
    """Frames (of 1..n) whose track ids or boxes differ between two runs."""

    def key(rows: Rows, f: int) -> list[tuple[int, tuple[float, ...]]]:
        return sorted((tid, tuple(np.round(box, 2))) for tid, box in rows.get(f, []))

    return sum(key(a, f) != key(b, f) for f in range(1, n + 1))


def parse_reid_variant(pairs: list[str]) -> dict[str, Any]:
    """`["weight=40", "max_per_step=4"]` -> `{"weight": 40, "max_per_step": 4}`, validated as `ReidConfig`."""
    import yaml

    variant: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--reid-config: expected KEY=VALUE, got {pair!r}")
        variant[key] = yaml.safe_load(value)
    try:
        ReidConfig.model_validate(variant)
    except ValueError as exc:
        raise SystemExit(f"--reid-config {' '.join(pairs)}: {exc}") from exc
    return variant


def reid_label(variant: dict[str, Any]) -> str:
    extra = ", ".join(f"{k}={v}" for k, v in variant.items())
    return "showroom floor-kalman + reid" + (f" ({extra})" if extra else "")


LINES_X_768 = (200, 300, 384, 450, 550)
"""Vertical image lines (x in 768x576 pixels) through the walking area, for the any-line count check."""
LINES_Y_768 = (200, 300, 400)
"""Horizontal image lines (y in 768x576 pixels): people walk along them as much as across, so a box whose
bottom jitters across such a line counts crossings nobody made."""


def row_crossings(tracks: Rows, line_y: float) -> tuple[int, int]:
    """(top-to-bottom, bottom-to-top) crossings of the horizontal image line by boxes' bottom centres."""
    last: dict[int, float] = {}
    down = up = 0
    for frame in sorted(tracks):
        for tid, box in tracks[frame]:
            y = box[1] + box[3]
            prev = last.get(tid)
            if prev is not None:
                if prev < line_y <= y:
                    down += 1
                elif prev >= line_y > y:
                    up += 1
            last[tid] = y
    return down, up


def image_line_counts(rows: Rows) -> dict[str, tuple[int, int]]:
    """Per image line (`x200`..., `y200`...), the crossings by the rows' bottom centres, each direction."""
    counts = {f"x{x}": line_crossings(rows, x * 0.625) for x in LINES_X_768}
    counts.update({f"y{y}": row_crossings(rows, y * 0.625) for y in LINES_Y_768})
    return counts


def gt_line_counts(x_768: float, first: int = 1, last: int = 10**9) -> tuple[int, int]:
    """(left-to-right, right-to-left) ground-truth crossings of one vertical line by boxes' bottom centres,
    in frames `first` to `last`."""
    return line_crossings(cut(gt_tracks(GT), first, last), x_768 * 0.625)


def door_counts_on_lines(
    dets: list[Detections], first: int = 1, last: int | None = None
) -> dict[int, tuple[int, int]]:
    """The product's floor door counter with one door per image line (inside = right of the line): the
    crossings made in frames `first` to `last` (default: the last) of a run over every frame."""
    import yaml

    data = yaml.safe_load(CONFIG.read_text())
    projection = calibrate_node(parse_config(data))[data["cameras"][0]["id"]]
    doors = []
    for x in LINES_X_768:
        xi = x * 0.625
        ends, _ = projection.to_floor([[xi, 100.0], [xi, 360.0], [min(xi + 80, 470), 250.0]])
        line = [[round(float(v), 3) for v in ends[0]], [round(float(v), 3) for v in ends[1]]]
        inside = [round(float(v), 3) for v in ends[2]]
        doors.append({"id": f"x{x}", "line_m": line, "inside_point_m": inside, "hysteresis_m": 0.2})
    data["doors"] = doors
    config = parse_config(data)
    pipeline = EdgePipeline(config, EventStamper(config.store_id, config.node_id, IdSource(0)))
    camera = config.cameras[0].id
    last = len(dets) if last is None else last
    before: dict[tuple[str, str], int] = {}
    for i, d in enumerate(dets[:last]):
        if i + 1 == first:
            before = dict(pipeline.analytics.crossings)
        pipeline.process(T0 + timedelta(seconds=i / FPS), {camera: d})
    c = pipeline.analytics.crossings
    return {
        x: (
            c[(f"x{x}", "in")] - before.get((f"x{x}", "in"), 0),
            c[(f"x{x}", "out")] - before.get((f"x{x}", "out"), 0),
        )
        for x in LINES_X_768
    }


def run_peer(
    make: Callable[[float], Callable[[Detections], list[tuple[int, np.ndarray]]]],
    dets: list[Detections],
    min_score: float,
) -> tuple[Rows, float]:
    step = make(min_score)
    rows: Rows = defaultdict(list)
    start = time.perf_counter()
    for i, d in enumerate(dets):
        rows[i + 1] = step(d)
    return rows, 1000 * (time.perf_counter() - start) / len(dets)


def sv_detections(d: Detections, min_score: float = 0.0):  # type: ignore[no-untyped-def]
    import supervision as sv

    keep = d.confidence >= min_score
    return sv.Detections(
        xyxy=d.xyxy[keep].astype(np.float32),
        confidence=d.confidence[keep].astype(np.float32),
        class_id=np.zeros(int(keep.sum()), dtype=int),
    )


def supervision_bytetrack(min_score: float, fps: float = FPS):  # type: ignore[no-untyped-def]
    import supervision as sv

    tracker = sv.ByteTrack(frame_rate=round(fps))

    def step(d: Detections) -> list[tuple[int, np.ndarray]]:
        out = tracker.update_with_detections(sv_detections(d, min_score))
        return [(int(t), xywh(b)) for b, t in zip(out.xyxy, out.tracker_id, strict=True) if t >= 0]

    return step


def trackers_peer(name: str):  # type: ignore[no-untyped-def]
    import trackers

    def make(min_score: float, fps: float = FPS):  # type: ignore[no-untyped-def]
        tracker = getattr(trackers, name)(frame_rate=fps)

        def step(d: Detections) -> list[tuple[int, np.ndarray]]:
            out = tracker.update(sv_detections(d, min_score))
            return [(int(t), xywh(b)) for b, t in zip(out.xyxy, out.tracker_id, strict=True) if t >= 0]

        return step

    return make


def norfair_peer(min_score: float):  # type: ignore[no-untyped-def]
    import norfair

    tracker = norfair.Tracker(distance_function="iou", distance_threshold=0.7, initialization_delay=2)

    def step(d: Detections) -> list[tuple[int, np.ndarray]]:
        keep = d.confidence >= min_score
        found = [
            norfair.Detection(points=b.reshape(2, 2).astype(np.float64), scores=np.array([s, s]))
            for b, s in zip(d.xyxy[keep], d.confidence[keep], strict=True)
        ]
        out = []
        for obj in tracker.update(detections=found):
            if obj.id is None:
                continue
            (x1, y1), (x2, y2) = obj.estimate
            out.append((int(obj.id), np.array([x1, y1, x2 - x1, y2 - y1])))
        return out

    return step


class _UltralyticsBoxes:
    """What Ultralytics' trackers read of its `Boxes`: conf, cls, xyxy, xywh (centre), boolean indexing."""

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray) -> None:
        self.xyxy = xyxy.astype(np.float32)
        self.conf = conf.astype(np.float32)
        self.cls = np.zeros(len(conf), np.float32)
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        self.xywh = np.concatenate([self.xyxy[:, :2] + wh / 2, wh], axis=1)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, index: np.ndarray) -> _UltralyticsBoxes:
        return _UltralyticsBoxes(self.xyxy[index], self.conf[index])


def ultralytics_peer(kind: str):  # type: ignore[no-untyped-def]
    """Ultralytics ByteTrack / BoT-SORT with their shipped defaults (BoT-SORT: no camera-motion compensation
    and no ReID, the camera is fixed and the input is detections only); frame_rate from the track buffer."""
    import ultralytics
    from ultralytics.trackers.bot_sort import BOTSORT
    from ultralytics.trackers.byte_tracker import BYTETracker
    from ultralytics.utils import YAML, IterableSimpleNamespace

    cfg = Path(ultralytics.__file__).parent / "cfg" / "trackers" / f"{kind}.yaml"

    def make(min_score: float):  # type: ignore[no-untyped-def]
        args = YAML.load(cfg)
        if kind == "botsort":
            args.update(gmc_method="none", with_reid=False)
        tracker = (BOTSORT if kind == "botsort" else BYTETracker)(IterableSimpleNamespace(**args))

        def step(d: Detections) -> list[tuple[int, np.ndarray]]:
            keep = d.confidence >= min_score
            out = tracker.update(_UltralyticsBoxes(d.xyxy[keep], d.confidence[keep]))
            return [(int(r[4]), xywh(r[:4])) for r in out]

        return step

    return make


def timing_20_people(frames: int = 300, repeats: int = 3) -> float:
    """ms per frame of tracking + analytics (and floor projection) with 20 people walking in view.

    CPU time of this thread (`time.thread_time`: not the idle spinning of BLAS or ONNX Runtime worker
    threads left by the detection and peer runs), the best of `repeats` runs: the machine is shared by
    other work, which stretches wall-clock time but not the CPU time the pipeline itself uses.
    """
    return min(_timing_once(frames) for _ in range(repeats))


def _timing_once(frames: int) -> float:
    config = load_config(CONFIG)
    pipeline = EdgePipeline(config, EventStamper(config.store_id, config.node_id, IdSource(0)))
    camera = config.cameras[0].id
    proj = pipeline.projections[camera]
    inv = np.linalg.inv(proj.homography)
    rng = np.random.default_rng(0)
    start_xy = np.column_stack([rng.uniform(8, 20, 20), rng.uniform(7, 16, 20)])
    vel = rng.normal(0, 0.8, (20, 2))
    spent = 0.0
    for i in range(frames):
        xy = start_xy + vel * np.sin(i / 40.0)[None] * 4
        homog = np.hstack([xy, np.ones((20, 1))]) @ inv.T
        feet = homog[:, :2] / homog[:, 2:3]
        boxes = np.column_stack([feet[:, 0] - 10, feet[:, 1] - 60, feet[:, 0] + 10, feet[:, 1]])
        det = Detections(boxes.astype(np.float32), np.full(20, 0.9, np.float32), (480, 360)).clipped()
        start = time.thread_time()
        pipeline.process(T0 + timedelta(seconds=i / FPS), {camera: det})
        spent += time.thread_time() - start
    return 1000 * spent / frames


def peer_trackers(
    fps: float = FPS,
) -> dict[str, Callable[[float], Callable[[Detections], list[tuple[int, np.ndarray]]]]]:
    peers = {
        "supervision ByteTrack": partial(supervision_bytetrack, fps=fps),
        "trackers SORT": partial(trackers_peer("SORTTracker"), fps=fps),
        "trackers ByteTrack": partial(trackers_peer("ByteTrackTracker"), fps=fps),
        "trackers OC-SORT": partial(trackers_peer("OCSORTTracker"), fps=fps),
        "trackers BoT-SORT": partial(trackers_peer("BoTSORTTracker"), fps=fps),
        "norfair (IoU)": norfair_peer,
    }
    for kind, label in (("bytetrack", "Ultralytics ByteTrack"), ("botsort", "Ultralytics BoT-SORT")):
        try:
            peers[label] = ultralytics_peer(kind)
        except ImportError as exc:  # needs torch, installed by hand (see the bench extra in pyproject)
            print(f"{label}: not run, not installed ({exc})", file=sys.stderr)
    return peers


def score(clip: Clip, rows: Rows, n: int, config: NodeConfig) -> dict[str, float]:
    """TrackEval scores of `rows` on the clip's scored frames, and the crossings made in them: of PETS09's
    image line x = 384 (`line_lr`, `line_rl`), or of each door by the boxes' floor feet (`door ID in`,
    `door ID out`)."""
    first, last = clip.span(n)
    metrics = evaluate(clip.gt, rows, last, first_frame=first, gt_scale=clip.gt_scale)
    if clip.is_pets:
        metrics["line_lr"], metrics["line_rl"] = line_crossings(cut(rows, first, last))
    else:
        for door, (n_in, n_out) in floor_door_counts(cut(rows, first, last), config).items():
            metrics[f"door {door} in"], metrics[f"door {door} out"] = n_in, n_out
    return metrics


def ours_metrics(
    run: OursRun, n: int, clip: Clip = PETS, config: NodeConfig | None = None
) -> dict[str, float]:
    config = config or load_config(clip.config)
    crossings = crossings_in(run, *clip.span(n))
    metrics = score(clip, run.rows, n, config)
    if not clip.is_pets:  # the product's own door counter, not its boxes' floor feet
        for door in config.doors:
            for direction in ("in", "out"):
                metrics[f"door {door.id} {direction}"] = crossings.get((door.id, direction), 0)
    lines = {key: metrics.pop(key) for key in ("line_lr", "line_rl") if key in metrics}
    metrics.update(
        door_in_lr=sum(v for (_, direction), v in crossings.items() if direction == "in"),
        door_out_rl=sum(v for (_, direction), v in crossings.items() if direction == "out"),
        **lines,
        ms=run.ms,
    )
    return metrics


def clip_from_args(args: argparse.Namespace) -> Clip:
    video = args.video or VIDEO
    gt = args.gt or GT
    config = args.config or CONFIG
    scale = args.gt_scale if args.gt_scale is not None else GT_SCALE if gt.resolve() == GT.resolve() else 1.0
    for flag, path in (("--video", video), ("--gt", gt), ("--config", config)):
        if not path.is_file():
            raise SystemExit(f"{flag} {path}: no such file")
    fps = load_config(config).cameras[0].fps
    return Clip(video, gt, config, scale, fps, parse_frames(args.frames) if args.frames else None)


def print_clip_table(clip: Clip, results: dict[str, dict[str, float]], config: NodeConfig, n: int) -> None:
    """The scores of a clip other than PETS09, with door counts per direction when the config has doors."""
    first, last = clip.span(n)
    truth = floor_door_counts(cut(gt_tracks(clip.gt, clip.gt_scale), first, last), config)
    doors = " | ".join(f"door {d} in / out ({i} / {o})" for d, (i, o) in truth.items())
    door_header = f" {doors} |" if doors else ""
    print(f"| tracker (input score) | HOTA | MOTA | IDF1 | ID sw. | IDs |{door_header} ms/frame |")
    print("|---|---|---|---|---|---|" + "---|" * (len(truth) + 1))
    for name, m in results.items():
        cells = "".join(f" {m[f'door {d} in']:.0f} / {m[f'door {d} out']:.0f} |" for d in truth)
        print(
            f"| {name} (>= {m.get('min_score', 0.1):.1f}) | {m['HOTA']:.3f} | {m['MOTA']:.3f} | "
            f"{m['IDF1']:.3f} | {m['IDSW']:.0f} | {m['ids']:.0f} |{cells} {m['ms']:.2f} |"
        )
    if truth:
        print(
            "Doors: ours by the product's door counter; the ground truth (in the header) and the peers by"
            " their boxes' bottom centres on the floor, counted by the same DoorCounter."
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    parser.add_argument(
        "--input-size", default="480x384", help="Detector input WxH for every tracker (peers: 480x384)."
    )
    parser.add_argument(
        "--reid",
        action="store_true",
        help="Also run ours with re-identification on (tracker.reid: {}), embedding boxes from the frames.",
    )
    parser.add_argument(
        "--reid-config",
        nargs="+",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Also run ours with these tracker.reid fields (repeat the option for more runs).",
    )
    parser.add_argument(
        "--only-ours", action="store_true", help="Skip the peer trackers (they take minutes)."
    )
    parser.add_argument(
        "--frames", metavar="A-B", help="Score only frames A to B (1-based, inclusive) of the whole run."
    )
    parser.add_argument("--video", type=Path, help="Another clip (default: PETS09-S2L1 view 1, 480x360).")
    parser.add_argument("--gt", type=Path, help="Its MOTChallenge ground truth (default: PETS09's gt.txt).")
    parser.add_argument("--config", type=Path, help="Its node config (default: examples/pets09.yaml).")
    parser.add_argument(
        "--gt-scale",
        type=float,
        help="Ground-truth pixels to video pixels (default: 0.625 for PETS09's gt.txt, 1 for another).",
    )
    args = parser.parse_args()
    clip = clip_from_args(args)
    config = load_config(clip.config)
    reid_variants: list[dict[str, Any]] = ([{}] if args.reid else []) + [
        parse_reid_variant(pairs) for pairs in args.reid_config
    ]
    w, h = (int(v) for v in args.input_size.split("x"))
    dets = clip_detections(clip, (w, h))
    print(f"detections: RTMDet-nano at {w}x{h}, score >= 0.1, {sum(len(d) for d in dets)} boxes", flush=True)
    n = len(dets)
    first, last = clip.span(n)
    results: dict[str, dict[str, float]] = {}

    ours = run_ours(dets, clip=clip)
    results["showroom floor-kalman"] = ours_metrics(ours, n, clip, config)
    all_rows: dict[str, Rows] = {"showroom floor-kalman": ours.rows}
    metrics = score(clip, ours.filled, n, config)
    metrics.update(ms=ours.ms)
    results[f"showroom floor-kalman, gaps <= {INTERPOLATE_GAPS} frames interpolated (offline MOT output)"] = (
        metrics
    )
    reid_names = []
    for variant in reid_variants:
        name = reid_label(variant)
        print(f"{name}: running", flush=True)
        run = run_ours(dets, variant, clip)
        metrics = ours_metrics(run, n, clip, config)
        metrics.update(
            embedded_per_frame=run.embedded_per_frame,
            reid_ms=run.reid_ms,
            frames_changed=frames_changed(cut(ours.rows, first, last), cut(run.rows, first, last), last),
        )
        results[name] = metrics
        all_rows[name] = run.rows
        reid_names.append(name)

    peers = {} if args.only_ours else peer_trackers(clip.fps)
    for name, make in peers.items():
        # Each peer gets the same detections, filtered at 0.1 (all) and at 0.3 (the detector's usual
        # threshold, for trackers without a low-score stage); its better run by HOTA is reported.
        best: dict[str, float] | None = None
        for min_score in (0.1, 0.3):
            try:
                rows, ms = run_peer(make, dets, min_score)
            except Exception as exc:  # a peer that cannot run is reported, not hidden
                print(f"{name}: failed: {exc!r}", file=sys.stderr)
                break
            metrics = score(clip, rows, n, config)
            metrics.update(ms=ms, min_score=min_score)
            if best is None or metrics["HOTA"] > best["HOTA"]:
                best = metrics
                all_rows[name] = rows
        if best is not None:
            results[name] = best
    if not clip.is_pets:
        boxes = sum(len(d) for d in dets[first - 1 : last])
        print(
            f"\n{clip.video.name}, frames {first}-{last} of {n}, {boxes} detections"
            f" (RTMDet-nano {w}x{h}, score >= 0.1), ground truth {clip.gt} x {clip.gt_scale:g}"
        )
        print_clip_table(clip, results, config, n)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            payload = {"clip": str(clip.video), "frames": [first, last], "results": results}
            args.json.write_text(json.dumps(payload, indent=2))
        return
    speed = timing_20_people()
    lines: dict[str, dict[int, tuple[int, int]]] = {
        "ground truth": {x: gt_line_counts(x, first, last) for x in LINES_X_768}
    }
    lines["showroom door counter"] = door_counts_on_lines(dets, first, last)
    for name, tracker_rows in all_rows.items():
        lines[f"{name} (image line)"] = {
            x: line_crossings(cut(tracker_rows, first, last), x * 0.625) for x in LINES_X_768
        }
    door_lr, door_rl = lines["ground truth"][384]
    image_lines = {"ground truth": image_line_counts(cut(gt_tracks(GT), first, last))}
    for name, tracker_rows in all_rows.items():
        image_lines[name] = image_line_counts(cut(tracker_rows, first, last))

    frames = f"{n} frames" if clip.frames is None else f"frames {first}-{last} of {n}"
    print(
        f"\nPETS09-S2L1, {frames}, {sum(len(d) for d in dets[first - 1 : last])} detections"
        f" (RTMDet-nano {w}x{h}, score >= 0.1)"
    )
    print(
        "| tracker (input score) | HOTA | MOTA | IDF1 | ID sw. | IDs | "
        f"line L->R ({door_lr}) | line R->L ({door_rl}) | ms/frame |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, m in results.items():
        door = f" (door {m['door_in_lr']:.0f} / {m['door_out_rl']:.0f})" if "door_in_lr" in m else ""
        print(
            f"| {name} (>= {m.get('min_score', 0.1):.1f}) | {m['HOTA']:.3f} | {m['MOTA']:.3f} | "
            f"{m['IDF1']:.3f} | {m['IDSW']:.0f} | "
            f"{m['ids']:.0f} | "
            f"{m['line_lr']:.0f} | {m['line_rl']:.0f}{door} | {m['ms']:.2f} |"
        )
    print("\nLine counts L->R / R->L on vertical lines at x (768x576 pixels); * = off by more than 1")
    print("| counter | " + " | ".join(f"x = {x}" for x in LINES_X_768) + " |")
    print("|---|" + "---|" * len(LINES_X_768))
    truth = lines["ground truth"]
    for name, by_x in lines.items():
        cells = []
        for x in LINES_X_768:
            lr, rl = by_x[x]
            off = abs(lr - truth[x][0]) > 1 or abs(rl - truth[x][1]) > 1
            cells.append(f"{lr} / {rl}{' *' if off else ''}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    names = [*LINES_X_768, *LINES_Y_768]
    print(
        "\nImage-line harness: every tracker's boxes (bottom centres) on vertical lines x (L->R / R->L) and "
        "horizontal lines y (down / up), 768x576 pixels; * = off by more than 1"
    )
    print(
        "| tracker | "
        + " | ".join([*(f"x = {x}" for x in LINES_X_768), *(f"y = {y}" for y in LINES_Y_768)])
        + " | total error | worst |"
    )
    print("|---|" + "---|" * (len(names) + 2))
    gt_lines = image_lines["ground truth"]
    for name, by_line in image_lines.items():
        cells, total, worst = [], 0, 0
        for key in gt_lines:
            a, b = by_line[key]
            errors = (abs(a - gt_lines[key][0]), abs(b - gt_lines[key][1]))
            total, worst = total + sum(errors), max(worst, *errors)
            cells.append(f"{a} / {b}{' *' if max(errors) > 1 else ''}")
        print(f"| {name} | " + " | ".join(cells) + f" | {total} | {worst} |")
    if reid_names:
        print("\nRe-identification (ms/frame: EdgePipeline.process wall, embedding included)")
        print(
            "| tracker | HOTA | MOTA | IDF1 | ID sw. | IDs | "
            f"door L->R / R->L ({door_lr} / {door_rl}) | ms/frame | boxes embedded/frame"
            " | reid ms/frame | frames with other tracks than without reid |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for name in ["showroom floor-kalman", *reid_names]:
            m = results[name]
            print(
                f"| {name} | {m['HOTA']:.3f} | {m['MOTA']:.3f} | {m['IDF1']:.3f} | {m['IDSW']:.0f} | "
                f"{m['ids']:.0f} | {m['door_in_lr']:.0f} / {m['door_out_rl']:.0f} | {m['ms']:.2f} | "
                f"{m.get('embedded_per_frame', 0.0):.2f} | {m.get('reid_ms', 0.0):.2f} | "
                f"{m.get('frames_changed', 0):.0f} |"
            )
    print(f"\ntracker + analytics, 20 people in view: {speed:.3f} ms/frame")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        lines_json = {name: {str(x): v for x, v in by_x.items()} for name, by_x in lines.items()}
        payload = {
            "pets09": results,
            "line_counts": lines_json,
            "image_line_counts": image_lines,
            "ms_per_frame_20_people": speed,
        }
        if clip.frames is not None:
            payload["frames"] = [first, last]
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
