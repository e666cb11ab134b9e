"""`showroom models`: list and fetch the registered models; quantise and run the person detectors."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vision_models.registry import (
    DEFAULT_MODEL_ID,
    MODEL_DIR_ENV,
    ModelError,
    get_entry,
    model_ids,
    search_dirs,
    status,
)


def parse_size_wh(value: str | None) -> tuple[int, int] | None:
    """'640x384' -> (640, 384); None stays None."""
    if value is None:
        return None
    parts = value.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise click.BadParameter(f"expected WIDTHxHEIGHT such as 480x384, got {value!r}")
    return int(parts[0]), int(parts[1])


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(1)


@click.group("models")
def models_group() -> None:
    """Models: list, fetch; person detectors: quantize, detect."""


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


__all__ = ["MODEL_DIR_ENV", "models_group", "parse_size_wh"]
