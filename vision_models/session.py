"""ONNX Runtime sessions for verified model files, and the check that a file's inputs/outputs match its entry.

Shared by the person detector (`vision_models.detector`) and the re-identification embedder
(`vision_models.reid`).
"""

from __future__ import annotations

from typing import Any

import onnxruntime as ort

from vision_models.registry import ModelEntry, ModelError, ModelFormatError, VerifiedModel

PROVIDERS: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}


def make_session(model: VerifiedModel, *, threads: int = 2, provider: str = "cpu") -> ort.InferenceSession:
    """An ONNX Runtime session for a verified model file, tuned for a small edge CPU.

    Raises:
        ModelError: unknown or unavailable execution provider, bad thread count.
        ModelFormatError: the file is not a loadable ONNX model.
    """
    if threads < 1:
        raise ModelError(f"threads must be >= 1, got {threads}")
    provider_name = PROVIDERS.get(provider.lower())
    if provider_name is None:
        raise ModelError(f"unknown execution provider {provider!r}; choose one of {', '.join(PROVIDERS)}")
    available = ort.get_available_providers()
    if provider_name not in available:
        raise ModelError(
            f"execution provider {provider!r} ({provider_name}) is not installed; "
            f"available: {', '.join(available)}"
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    providers = [provider_name] if provider_name == PROVIDERS["cpu"] else [provider_name, PROVIDERS["cpu"]]
    try:
        return ort.InferenceSession(str(model.path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped exceptions for unparsable files
        raise ModelFormatError(f"{model.entry.id}: {model.path} is not a loadable ONNX model: {exc}") from exc


def check_session_io(entry: ModelEntry, session: ort.InferenceSession) -> None:
    """Raise ModelFormatError when the session's inputs/outputs differ from the registry entry.

    Detectors take NCHW [batch, 3, height, width]; a `reid` model takes one NHWC crop [1, height, width, 3]
    and returns [1, embedding_dim].
    """
    inputs = session.get_inputs()
    outputs = session.get_outputs()
    problems: list[str] = []
    if [i.name for i in inputs] != [entry.input_name]:
        problems.append(f"inputs {[i.name for i in inputs]}, expected [{entry.input_name!r}]")
    else:
        problems += _input_shape_problems(entry, list(inputs[0].shape))
    if tuple(o.name for o in outputs) != entry.output_names:
        problems.append(f"outputs {[o.name for o in outputs]}, expected {list(entry.output_names)}")
    else:
        problems += _output_shape_problems(entry, list(outputs[0].shape))
    if problems:
        raise ModelFormatError(
            f"{entry.id}: model file does not match its registry entry: {'; '.join(problems)}"
        )


def axis_fits(declared: Any, expected: int) -> bool:
    """A declared axis size equals `expected`, or is dynamic (a name or None: checked when the model runs)."""
    return not isinstance(declared, int) or declared == expected


def _input_shape_problems(entry: ModelEntry, shape: list[Any]) -> list[str]:
    w, h = entry.input_size_wh
    if entry.task == "reid":
        return [] if shape == [1, h, w, 3] else [f"input shape {shape}, expected [1, {h}, {w}, 3] (NHWC)"]
    if len(shape) != 4 or shape[1] != 3:
        return [f"input shape {shape}, expected [batch, 3, height, width]"]
    if not entry.dynamic_input and (shape[3], shape[2]) != entry.input_size_wh:
        return [f"input shape {shape}, expected width x height {entry.input_size_wh}"]
    return []


def _output_shape_problems(entry: ModelEntry, shape: list[Any]) -> list[str]:
    if entry.task == "reid" and shape != [1, entry.embedding_dim]:
        return [f"output shape {shape}, expected [1, {entry.embedding_dim}]"]
    if entry.family == "yolox" and (len(shape) != 3 or shape[-1] != 5 + len(entry.classes)):
        return [f"output shape {shape}, expected [1, anchors, {5 + len(entry.classes)}]"]
    if entry.family == "yolov8" and (len(shape) != 3 or shape[1] != 4 + len(entry.classes)):
        return [f"output shape {shape}, expected [1, {4 + len(entry.classes)}, anchors]"]
    if entry.family == "rtmdet" and (len(shape) != 3 or not axis_fits(shape[-1], 5)):
        return [f"output shape {shape}, expected [batch, boxes, 5] (x1, y1, x2, y2, score)"]
    return []
