"""Produce an INT8 variant of a registered model with onnxruntime.quantization (static, QDQ, per channel).

The variant is written to the user cache as `<file stem>_int8.onnx`, with a JSON record of its sha256 and of
what it was made from; `load_detector("<id>-int8")` then loads and verifies it like any registered model.
Activation ranges are calibrated on frames from a video of the target scene.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from vision_models.detector import build_detector
from vision_models.registry import (
    INT8_SUFFIX,
    ModelError,
    VerifiedModel,
    cache_dir,
    get_entry,
    int8_entry,
    int8_file_name,
    int8_record_path,
    resolve,
    sha256_of,
    verify_file,
)
from vision_models.video import read_frames, video_frame_count

log = logging.getLogger(__name__)

# Only the convolutions are quantised: they are nearly all of the compute, while box decoding and the
# in-graph NMS keep float precision.
OPS_TO_QUANTIZE = ("Conv",)


@dataclass(frozen=True)
class QuantizeResult:
    entry: Any
    path: Path
    sha256: str


def calibration_batches(
    model: VerifiedModel, video: Path, frames: int, input_size_wh: tuple[int, int] | None
) -> list[dict[str, np.ndarray]]:
    """Up to `frames` preprocessed inputs, sampled evenly over `video`."""
    detector = build_detector(model, input_size_wh=input_size_wh, threads=1)
    total = video_frame_count(video)
    step = max(total // frames, 1) if total else 1
    batches: list[dict[str, np.ndarray]] = []
    for index, frame in enumerate(read_frames(video)):
        if index % step:
            continue
        blob, _ = detector.preprocess([frame])
        batches.append({model.entry.input_name: blob})
        if len(batches) >= frames:
            break
    if not batches:
        raise ModelError(f"no frames could be read from calibration video {video}")
    return batches


def quantize(
    model_id: str,
    calibration_video: Path,
    *,
    frames: int = 64,
    input_size_wh: tuple[int, int] | None = None,
) -> QuantizeResult:
    """Quantise `model_id` to INT8 into the user cache; returns the new file's entry, path and sha256.

    Raises:
        ModelError: the id is unknown or already an INT8 variant, its file is missing or altered, the
            `onnx` package is not installed, or the calibration video has no frames.
    """
    if model_id.endswith(INT8_SUFFIX):
        raise ModelError(f"{model_id} is already an INT8 variant; pass the float model id")
    base = resolve(get_entry(model_id).id)
    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
    except ImportError as exc:
        raise ModelError(
            "quantisation needs the onnx package: pip install 'showroom-vision[quantize]'"
        ) from exc

    batches = calibration_batches(base, calibration_video, frames, input_size_wh)

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._items = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._items, None)

    out_dir = cache_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / int8_file_name(base.entry)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".quantize-") as tmp:
        staged = Path(tmp) / final.name
        quantize_static(
            str(base.path),
            str(staged),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(OPS_TO_QUANTIZE),
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        staged.replace(final)
    digest = sha256_of(final)
    record = {
        "sha256": digest,
        "quantised_from": base.entry.id,
        "source_sha256": base.sha256,
        "calibration_video": calibration_video.name,
        "calibration_frames": len(batches),
        "ops": list(OPS_TO_QUANTIZE),
        "onnxruntime": ort.__version__,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    int8_record_path(base.entry).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    entry = int8_entry(base.entry)
    verify_file(entry, final)
    log.info("quantised %s -> %s (%d calibration frames)", base.entry.id, final, len(batches))
    return QuantizeResult(entry=entry, path=final, sha256=digest)
