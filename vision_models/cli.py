"""`showroom models`: list and fetch the registered models; import, evaluate, quantise and run detectors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vision_models.registry import (
    DEFAULT_MODEL_ID,
    DETECTOR_FAMILIES,
    MODEL_DIR_ENV,
    ModelError,
    get_entry,
    model_ids,
    search_dirs,
    status,
)

# Detections down to this score feed the AP50 curve of `models evaluate` (as in bench/bench_detection.py).
AP_SCORE_FLOOR = 0.05


def parse_size_wh(value: str | None) -> tuple[int, int] | None:
    """'640x384' -> (640, 384); None stays None."""
    if value is None:
        return None
    parts = value.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise click.BadParameter(f"expected WIDTHxHEIGHT such as 480x384, got {value!r}")
    return int(parts[0]), int(parts[1])


def _fail(exc: Exception, code: int = 1) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(code)


@click.group("models")
def models_group() -> None:
    """Models: list, fetch; person detectors: import, evaluate, quantize, detect."""


@models_group.command("list")
def list_models() -> None:
    """Each registered model: present and verified or not, licence, file location."""
    click.echo(f"searched: {', '.join(str(d) for d in search_dirs())}")
    for model_id in model_ids(None):
        variants = (model_id, model_id + "-int8") if get_entry(model_id).task == "detect" else (model_id,)
        for variant in variants:
            st = status(variant)
            if variant.endswith("-int8") and st.path is None:
                continue  # a quantised variant exists only once produced on this machine
            state = "verified" if st.verified else ("missing" if st.path is None else "BAD CHECKSUM")
            default = " (default)" if variant == DEFAULT_MODEL_ID else ""
            default += " (imported)" if st.entry.imported else ""
            w, h = st.entry.input_size_wh
            sizes = "any multiple of 32" if st.entry.dynamic_input else "fixed"
            output = f", {st.entry.embedding_dim}-value embedding" if st.entry.embedding_dim else ""
            click.echo(
                f"{variant}{default}: {state}; {st.entry.family}, input {w}x{h} ({sizes}){output}; "
                f"licence {st.entry.licence}"
            )
            click.echo(f"    file: {st.path or st.entry.file_name}")
            if st.problem and st.path is not None:
                click.echo(f"    problem: {st.problem}")
            if st.entry.url:
                click.echo(f"    source: {st.entry.url}")
            if st.entry.imported:
                click.echo(f"    sha256: {', '.join(st.entry.sha256)}")
            click.echo(f"    provenance: {st.entry.provenance}")


@models_group.command("fetch")
@click.argument("model_id")
@click.option(
    "--dir", "dest_dir", type=click.Path(file_okay=False, path_type=Path), help="Default: user cache."
)
def fetch_model(model_id: str, dest_dir: Path | None) -> None:
    """Download MODEL_ID from its official URL, with a progress bar and checksum check."""
    from vision_models.fetch import fetch

    with click.progressbar(length=0, label=f"fetching {model_id}", show_pos=False, file=sys.stderr) as bar:

        def progress(done: int, total: int | None) -> None:
            if total and bar.length != total:
                bar.length = total
            bar.update(done - bar.pos)

        try:
            model = fetch(model_id, dest_dir=dest_dir, progress=progress)
        except ModelError as exc:
            _fail(exc)
            return
    click.echo(f"{model.entry.id}: {model.path} (sha256 {model.sha256}, verified)")


@models_group.command("quantize")
@click.argument("model_id")
@click.option(
    "--calibration",
    "calibration_video",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Video from the target camera (or similar) whose frames calibrate activation ranges.",
)
@click.option(
    "--frames", default=64, show_default=True, type=click.IntRange(1, 2000), help="Calibration frames."
)
@click.option("--input-size", "input_size", default=None, help="Calibration input WxH; default: model's.")
def quantize_model(model_id: str, calibration_video: Path, frames: int, input_size: str | None) -> None:
    """Produce the INT8 variant `<MODEL_ID>-int8` in the user cache with onnxruntime.quantization."""
    from vision_models.quantize import quantize

    try:
        result = quantize(model_id, calibration_video, frames=frames, input_size_wh=parse_size_wh(input_size))
    except (ModelError, OSError) as exc:
        _fail(exc)
        return
    click.echo(f"{result.entry.id}: {result.path} (sha256 {result.sha256})")


@models_group.command("detect")
@click.argument("video", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "model_id", default=DEFAULT_MODEL_ID, show_default=True, help="Registry id.")
@click.option("--input-size", "input_size", default=None, help="Network input WxH (e.g. 480x384).")
@click.option("--score-threshold", default=0.3, show_default=True, type=click.FloatRange(0, 1, min_open=True))
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--provider", default="cpu", show_default=True, help="cpu, cuda, tensorrt, openvino, coreml.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
def detect(
    video: Path,
    model_id: str,
    input_size: str | None,
    score_threshold: float,
    threads: int,
    provider: str,
    out_path: Path,
    progress: bool,
) -> None:
    """Detect people in VIDEO; write MOTChallenge rows `frame,-1,x,y,w,h,score,-1,-1,-1` to --out."""
    from vision_models.detector import load_detector
    from vision_models.video import VideoError, detect_video, video_frame_count

    if not video.is_file():
        _fail(VideoError(f"video file not found: {video}"))
        return
    try:
        detector = load_detector(
            model_id,
            input_size_wh=parse_size_wh(input_size),
            score_threshold=score_threshold,
            threads=threads,
            provider=provider,
        )
    except ModelError as exc:
        _fail(exc)
        return
    total = video_frame_count(video)
    try:
        with (
            out_path.open("w", encoding="utf-8") as out,
            click.progressbar(
                length=total, label=f"detect {video.name}", file=sys.stderr, hidden=not progress
            ) as bar,
        ):
            summary = detect_video(detector, video, out, on_frame=lambda _n: bar.update(1))
    except VideoError as exc:
        _fail(exc)
        return
    per_frame = detector.stats.per_frame_ms()
    click.echo(
        f"{summary.frames} frames, {summary.detections} detections -> {out_path}; {detector.model_id} "
        f"{detector.input_size_wh[0]}x{detector.input_size_wh[1]}: pre {per_frame.pre_ms:.2f} ms, "
        f"infer {per_frame.infer_ms:.2f} ms, post {per_frame.post_ms:.2f} ms per frame",
        err=True,
    )


@models_group.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--id", "model_id", required=True, help="Registry id to give it (lowercase, digits, . _ -).")
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["onnx", "ultralytics"]),
    default=None,
    help="onnx, or ultralytics for a YOLO .pt (exported to ONNX; needs the train extra). Default: by suffix.",
)
@click.option(
    "--postprocess",
    "family",
    metavar="|".join(DETECTOR_FAMILIES),
    default="yolov8",
    show_default=True,
    help="Output family: rtmdet (NMS in graph: dets, labels), yolox (raw head), yolov8 (Ultralytics head).",
)
@click.option(
    "--preprocess",
    "preprocess_spec",
    default=None,
    help="bgr-raw, rgb-unit, bgr-imagenet, rgb-imagenet, or 'order=rgb;mean=0,0,0;std=255,255,255;pad=114'. "
    "Default: the family's usual one.",
)
@click.option("--input-size", "input_size", default=None, help="Input WxH; required for a dynamic input.")
@click.option("--person-class", type=click.IntRange(0, 10_000), default=None, help="Class index of a person.")
@click.option("--licence", default="unspecified (imported by the installer)", help="Licence of the weights.")
@click.option("--replace", is_flag=True, help="Replace a model imported under this id with another file.")
def import_model(
    file: Path,
    model_id: str,
    file_format: str | None,
    family: str,
    preprocess_spec: str | None,
    input_size: str | None,
    person_class: int | None,
    licence: str,
    replace: bool,
) -> None:
    """Validate FILE (ONNX, or an Ultralytics .pt), copy it into the model directory and register it, so a
    node configuration can name it as `detector.model`. Bad input: one error line, exit 2."""
    from vision_models.importer import ImportModelError, ImportOptions, import_detector, parse_preprocess

    try:
        options = ImportOptions(
            family=family,
            preprocess=parse_preprocess(preprocess_spec) if preprocess_spec else None,
            input_size_wh=parse_size_wh(input_size),
            person_class=person_class,
            licence=licence,
            replace=replace,
            file_format="ultralytics" if file_format == "ultralytics" else ("onnx" if file_format else None),
        )
    except (ModelError, click.BadParameter) as exc:
        _fail(ImportModelError(f"{file}: {exc.message if isinstance(exc, click.BadParameter) else exc}"), 2)
        return
    try:
        model = import_detector(file, model_id, options)
    except ModelError as exc:
        _fail(exc, code=2)
        return
    entry = model.entry
    w, h = entry.input_size_wh
    person = entry.postprocess.person_class if entry.postprocess else "-"
    click.echo(
        f"{entry.id}: imported {file} -> {model.path} (sha256 {model.sha256}); {entry.family}, input {w}x{h}"
        f"{' (dynamic)' if entry.dynamic_input else ' (fixed)'}, person class {person}"
    )
    click.echo(f"use it in a node configuration as  detector: {{model: {entry.id}}}")


@models_group.command("evaluate")
@click.argument("model_id")
@click.option("--video", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--gt", "gt_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
    help="MOTChallenge ground truth frame,id,x,y,w,h,flag,... (flag 0: ignore region).",
)  # fmt: skip
@click.option("--input-size", "input_size", default=None, help="Network input WxH; model default.")
@click.option(
    "--scale", default=1.0, show_default=True, type=click.FloatRange(0, 100, min_open=True),
    help="Multiplies the ground truth's pixels to the video's (0.625: 768x576 truth on a 480x360 video).",
)  # fmt: skip
@click.option("--frames", "max_frames", type=click.IntRange(1), default=None, help="First N frames only.")
@click.option(
    "--score-threshold", default=0.3, show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Precision and recall count detections at or above it (AP50 uses every detection >= 0.05).",
)  # fmt: skip
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a line.")
def evaluate_model(
    model_id: str,
    video: Path,
    gt_path: Path,
    input_size: str | None,
    scale: float,
    max_frames: int | None,
    score_threshold: float,
    threads: int,
    as_json: bool,
) -> None:
    """AP50, precision and recall of detector MODEL_ID on VIDEO against MOTChallenge ground truth."""
    from vision_models.detector import load_detector
    from vision_models.evaluation import evaluate, load_mot_ground_truth
    from vision_models.video import VideoError, detect_frames

    try:
        truth = load_mot_ground_truth(gt_path, scale=scale)
    except (OSError, ValueError) as exc:
        _fail(ModelError(f"ground truth {gt_path}: {exc}"))
        return
    try:
        floor = min(AP_SCORE_FLOOR, score_threshold)
        detector = load_detector(
            model_id, input_size_wh=parse_size_wh(input_size), score_threshold=floor, threads=threads
        )
        detections = detect_frames(detector, video, max_frames=max_frames)
    except (ModelError, VideoError) as exc:
        _fail(exc)
        return
    if not detections:
        _fail(ModelError(f"{video}: no frames decoded"))
        return
    # Every decoded frame counts: a frame without ground-truth rows has nobody in it.
    report = evaluate(detections, truth, frames=sorted(detections), score_threshold=score_threshold)
    w, h = detector.input_size_wh
    if as_json:
        record = {
            "model": detector.model_id, "sha256": detector.sha256, "input_size_wh": [w, h],
            "video": str(video), "gt": str(gt_path), "scale": scale, "frames": report.frames,
            "ap50": round(report.ap50, 4), "precision": round(report.precision, 4),
            "recall": round(report.recall, 4), "score_threshold": score_threshold,
            "true_positives": report.true_positives, "false_positives": report.false_positives,
            "ground_truth": report.ground_truth,
        }  # fmt: skip
        click.echo(json.dumps(record))
    else:
        click.echo(f"{detector.model_id} {w}x{h} on {video.name}: {report.summary()}")


__all__ = ["MODEL_DIR_ENV", "models_group", "parse_size_wh"]
