"""Bring your own detector: validate an ONNX file (or an Ultralytics `.pt`), copy it, register it locally.

    model = import_detector(Path("ceiling.onnx"), "ceiling-yolov8n", ImportOptions(family="yolov8"))
    detector = load_detector("ceiling-yolov8n")

The file is checked before anything is written: it must load in ONNX Runtime, take one NCHW [B, 3, H, W]
input, return the outputs of its declared family (`vision_models.registry.DETECTOR_FAMILIES`) with a class
count that holds the person class, and run once on a blank image through the same detector code the node
uses. It is then copied into `vision_models.registry.import_dir()` as `<id>.onnx` and registered with its
sha256 in that directory's local registry file (`vision_models.local_registry`). An Ultralytics `.pt` is
first exported to ONNX by the `ultralytics` package (the `train` extra, which pulls in torch); the edge
runtime never imports it.
"""

from __future__ import annotations

import ast
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort

from vision_models.registry import (
    COCO_CLASSES,
    DETECTOR_FAMILIES,
    INT8_SUFFIX,
    MODELS,
    EntryError,
    ModelEntry,
    ModelError,
    Postprocess,
    Preprocess,
    VerifiedModel,
    import_dir,
    local_entries,
    sha256_of,
)
from vision_models.session import axis_fits

log = logging.getLogger(__name__)

ImportFormat = Literal["onnx", "ultralytics"]
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
YOLO_STRIDES = (8, 16, 32)

PREPROCESS_PRESETS: dict[str, Preprocess] = {
    # Raw 0..255 BGR: YOLOX.
    "bgr-raw": Preprocess(),
    # RGB scaled to 0..1: Ultralytics YOLOv8 / YOLO11.
    "rgb-unit": Preprocess(std_bgr=(255.0, 255.0, 255.0), channel_order="rgb"),
    # BGR, ImageNet mean/std on the 0..255 scale: OpenMMLab (RTMDet, mmdeploy exports).
    "bgr-imagenet": Preprocess(mean_bgr=(103.53, 116.28, 123.675), std_bgr=(57.375, 57.12, 58.395)),
    # RGB, ImageNet mean/std on the 0..255 scale (torchvision-style exports).
    "rgb-imagenet": Preprocess(
        mean_bgr=(103.53, 116.28, 123.675), std_bgr=(57.375, 57.12, 58.395), channel_order="rgb"
    ),
}
"""Named preprocessing (`--preprocess NAME`); pad value 114 unless given."""

FAMILY_PREPROCESS: dict[str, str] = {"rtmdet": "bgr-imagenet", "yolox": "bgr-raw", "yolov8": "rgb-unit"}
"""The usual preprocessing of each family, used when none is declared."""

TRAIN_EXTRA_HINT = "pip install '.[train]'"


class ImportModelError(ModelError):
    """A file that cannot be imported as a detector; the message names the file and the reason."""


@dataclass(frozen=True)
class ImportOptions:
    """What the importer is told about a file (what it cannot read from the file itself).

    Attributes:
        family: output family, one of `DETECTOR_FAMILIES`.
        preprocess: preprocessing; the family's usual one (`FAMILY_PREPROCESS`) when None.
        input_size_wh: default input (width, height); required for a model with a dynamic input size.
        person_class: class index of a person; when None, the index of a class named `person` in the file's
            metadata, else 0.
        licence: licence of the weights, recorded in the registry.
        replace: allow replacing an imported model of the same id whose file differs.
        file_format: `onnx`, or `ultralytics` for a `.pt` checkpoint; from the file suffix when None.
    """

    family: str = "yolov8"
    preprocess: Preprocess | None = None
    input_size_wh: tuple[int, int] | None = None
    person_class: int | None = None
    licence: str = "unspecified (imported by the installer)"
    replace: bool = False
    file_format: ImportFormat | None = None


def parse_preprocess(spec: str) -> Preprocess:
    """A preset name (`PREPROCESS_PRESETS`) or `key=value` pairs separated by `;`:
    `order=rgb;mean=0,0,0;std=255,255,255;pad=114` (mean and std per B, G, R channel, 0..255 scale)."""
    if spec in PREPROCESS_PRESETS:
        return PREPROCESS_PRESETS[spec]
    if "=" not in spec:
        raise ModelError(
            f"unknown preprocess {spec!r}; use one of {', '.join(PREPROCESS_PRESETS)} or "
            "'order=rgb;mean=0,0,0;std=255,255,255;pad=114'"
        )
    values: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        key, _, value = part.partition("=")
        key = key.strip()
        try:
            if key == "order":
                values["channel_order"] = value.strip().lower()
            elif key in ("mean", "std"):
                numbers = tuple(float(v) for v in value.split(","))
                if len(numbers) != 3:
                    raise ValueError(f"{key} needs 3 values (B, G, R), got {len(numbers)}")
                values[f"{key}_bgr"] = numbers
            elif key == "pad":
                values["pad_value"] = int(value)
            else:
                raise ValueError(f"unknown key {key!r} (order, mean, std, pad)")
        except ValueError as exc:
            raise ModelError(f"preprocess {spec!r}: {exc}") from None
    return Preprocess(**values)


def import_detector(path: Path, model_id: str, options: ImportOptions) -> VerifiedModel:
    """Validate `path`, copy it into the import directory as `<model_id>.onnx`, register it; returns the
    registered, verified model.

    Raises:
        ImportModelError: unusable file (names it and why), bad or taken id, family or options that do not
            fit the file, or a different file already imported under `model_id` without `replace`.
    """
    _check_id(model_id, path)
    if not path.is_file():
        raise ImportModelError(f"{path}: no such file")
    file_format = options.file_format or ("ultralytics" if path.suffix.lower() == ".pt" else "onnx")
    if options.family not in DETECTOR_FAMILIES:
        raise ImportModelError(
            f"{path}: unknown postprocess family {options.family!r}; choose one of "
            f"{', '.join(DETECTOR_FAMILIES)}"
        )
    with tempfile.TemporaryDirectory(prefix="showroom-import-") as tmp:
        onnx_path = path if file_format == "onnx" else export_ultralytics(path, Path(tmp), options)
        digest = sha256_of(onnx_path)
        _check_not_taken(model_id, digest, options.replace, shown_as=path)
        entry = replace(inspect_detector(onnx_path, model_id, options, shown_as=path), sha256=(digest,))
        staged = VerifiedModel(entry=entry, path=onnx_path, sha256=digest)
        run_once(staged, shown_as=path)
        return _install(staged, shown_as=path)


def _check_id(model_id: str, path: Path) -> None:
    if not ID_PATTERN.match(model_id):
        raise ImportModelError(
            f"{path}: model id {model_id!r}: use lowercase letters, digits, '.', '_' and '-' (at most 64, "
            "starting with a letter or digit)"
        )
    if model_id in MODELS or model_id.removesuffix(INT8_SUFFIX) in MODELS:
        raise ImportModelError(f"{path}: model id {model_id!r} is a built-in model's id; choose another --id")
    if model_id.endswith(INT8_SUFFIX):
        raise ImportModelError(
            f"{path}: model id {model_id!r}: ids ending in {INT8_SUFFIX} name INT8 variants"
        )


def export_ultralytics(pt_path: Path, work_dir: Path, options: ImportOptions) -> Path:
    """Export an Ultralytics YOLO checkpoint to ONNX in `work_dir` (torch, through the `train` extra)."""
    try:
        from ultralytics import YOLO  # type: ignore[import-not-found,unused-ignore]  # the `train` extra
    except ImportError:
        raise ImportModelError(
            f"{pt_path}: importing an Ultralytics .pt needs the ultralytics package (torch): "
            f"{TRAIN_EXTRA_HINT}; or export it to ONNX elsewhere and import the .onnx"
        ) from None
    copy = work_dir / pt_path.name
    shutil.copyfile(pt_path, copy)  # the exporter writes beside its input: keep the user's folder clean
    imgsz = [options.input_size_wh[1], options.input_size_wh[0]] if options.input_size_wh else 640
    try:
        exported = YOLO(str(copy)).export(format="onnx", imgsz=imgsz, dynamic=False, simplify=False)
    except Exception as exc:  # the exporter raises many types (torch, onnx, its own)
        raise ImportModelError(f"{pt_path}: Ultralytics export to ONNX failed: {exc}") from exc
    return Path(str(exported))


def inspect_detector(path: Path, model_id: str, options: ImportOptions, *, shown_as: Path) -> ModelEntry:
    """The registry entry `path` would get, from its inputs/outputs and `options` (sha256 not yet set)."""
    session = _open(path, shown_as)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise ImportModelError(f"{shown_as}: a detector takes one input image, this file takes {len(inputs)}")
    shape = list(inputs[0].shape)
    if len(shape) != 4 or shape[1] != 3:
        raise ImportModelError(
            f"{shown_as}: input {inputs[0].name!r} has shape {shape} (rank {len(shape)}), expected "
            "[batch, 3, height, width]"
        )
    if inputs[0].type != "tensor(float)":
        raise ImportModelError(f"{shown_as}: input {inputs[0].name!r} is {inputs[0].type}, expected float32")
    size_wh, dynamic = _input_size(shape, options.input_size_wh, shown_as)
    family = options.family
    n_classes = _class_count(family, [list(o.shape) for o in outputs], size_wh, shown_as)
    names = _metadata_class_names(session, n_classes)
    person_class = _person_class(options.person_class, names, n_classes, shown_as)
    classes = names or _placeholder_classes(n_classes, person_class)
    preprocess = options.preprocess or PREPROCESS_PRESETS[FAMILY_PREPROCESS[family]]
    strides = YOLO_STRIDES if family in ("yolox", "yolov8") else ()
    try:
        return ModelEntry(
            id=model_id,
            family=family,  # type: ignore[arg-type]  # checked against DETECTOR_FAMILIES above
            file_name=f"{model_id}.onnx",
            url="",
            sha256=(),
            licence=options.licence,
            provenance=(
                f"imported on this machine from {shown_as.name} on "
                f"{datetime.now(UTC).strftime('%Y-%m-%d')}; not from the official registry"
            ),
            input_size_wh=size_wh,
            dynamic_input=dynamic,
            dynamic_batch=not isinstance(shape[0], int),
            classes=classes,
            input_name=inputs[0].name,
            output_names=tuple(o.name for o in outputs),
            preprocess=preprocess,
            postprocess=Postprocess(
                nms_in_graph=family == "rtmdet", person_class=person_class, strides=strides
            ),
            notes=f"{family}: {DETECTOR_FAMILIES[family]}",
            imported=True,
        )
    except EntryError as exc:
        raise ImportModelError(f"{shown_as}: {exc}") from None


def _open(path: Path, shown_as: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped exceptions for unparsable files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImportModelError(f"{shown_as}: not a loadable ONNX model ({reason})") from None


def _input_size(
    shape: list[Any], requested_wh: tuple[int, int] | None, shown_as: Path
) -> tuple[tuple[int, int], bool]:
    h, w = shape[2], shape[3]
    if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0:
        if requested_wh is not None and requested_wh != (w, h):
            raise ImportModelError(
                f"{shown_as}: fixed input size {w}x{h}; --input-size {requested_wh[0]}x{requested_wh[1]} "
                "does not match"
            )
        return (w, h), False
    if requested_wh is None:
        raise ImportModelError(f"{shown_as}: the input size is dynamic ({shape}); give --input-size WxH")
    return requested_wh, True


def _class_count(family: str, shapes: list[list[Any]], size_wh: tuple[int, int], shown_as: Path) -> int:
    """Classes in the outputs of `family` (shapes as the file declares them; dynamic axes are names)."""
    anchors = _anchor_count(size_wh)
    expected = {
        "rtmdet": "two outputs: dets [B, N, 5] and labels [B, N]",
        "yolox": f"one output [B, anchors, 5 + classes], {anchors} anchors at {size_wh[0]}x{size_wh[1]}",
        "yolov8": "one output [B, 4 + classes, anchors]",
    }[family]
    fits = False
    n_classes = 1
    if family == "rtmdet" and len(shapes) == 2:
        # mmdeploy exports often name the last axis instead of fixing it to 5: the test run checks it.
        fits = len(shapes[0]) == 3 and axis_fits(shapes[0][2], 5) and len(shapes[1]) == 2
        n_classes = 0  # labels are indexes; the class names come from metadata or the person class
    elif family == "yolox" and len(shapes) == 1 and len(shapes[0]) == 3:
        fits = isinstance(shapes[0][2], int) and shapes[0][2] > 5 and axis_fits(shapes[0][1], anchors)
        n_classes = shapes[0][2] - 5 if fits else 0
    elif family == "yolov8" and len(shapes) == 1 and len(shapes[0]) == 3:
        fits = isinstance(shapes[0][1], int) and shapes[0][1] > 4
        n_classes = shapes[0][1] - 4 if fits else 0
    if not fits:
        raise ImportModelError(
            f"{shown_as}: outputs {shapes} do not fit the {family} family, which returns {expected}"
        )
    return n_classes


def _metadata_class_names(session: ort.InferenceSession, n_classes: int) -> tuple[str, ...]:
    """Class names from the file's metadata (Ultralytics writes `names` as a dict literal), or ()."""
    raw = session.get_modelmeta().custom_metadata_map.get("names")
    if not raw:
        return ()
    try:
        names = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return ()
    if isinstance(names, dict) and sorted(names) == list(range(len(names))):
        values = tuple(str(names[i]) for i in range(len(names)))
    elif isinstance(names, list | tuple):
        values = tuple(str(n) for n in names)
    else:
        return ()
    return values if n_classes in (0, len(values)) else ()


def _person_class(requested: int | None, names: tuple[str, ...], n_classes: int, shown_as: Path) -> int:
    if requested is None:
        return names.index("person") if "person" in names else 0
    if requested < 0 or (n_classes and requested >= n_classes):
        raise ImportModelError(
            f"{shown_as}: --person-class {requested} is not a class of this model (it has {n_classes})"
        )
    return requested


def _placeholder_classes(n_classes: int, person_class: int) -> tuple[str, ...]:
    if n_classes == len(COCO_CLASSES) and person_class == 0:
        return COCO_CLASSES
    count = max(n_classes, person_class + 1)
    return tuple("person" if i == person_class else f"class{i}" for i in range(count))


def run_once(model: VerifiedModel, *, shown_as: Path) -> None:
    """Run the file through the node's detector code on a blank frame; check the actual output shapes."""
    from vision_models.detector import build_detector  # cv2 and the decoders: only when importing

    try:
        detector = build_detector(model, threads=1)
        w, h = detector.input_size_wh
        blob, _ = detector.preprocess([np.full((h, w, 3), 114, np.uint8)])
        outputs = detector.session.run(None, {model.entry.input_name: blob})
        _check_actual_outputs(model.entry, [np.shape(o) for o in outputs], shown_as)
        detector.detect(np.full((h, w, 3), 114, np.uint8))
    except ImportModelError:
        raise
    except Exception as exc:  # onnxruntime and decoder failures on a file that does not do what it declares
        raise ImportModelError(f"{shown_as}: fails a test run on a blank image: {exc}") from None


def _anchor_count(size_wh: tuple[int, int]) -> int:
    """Anchor points of a YOLO head with strides 8/16/32 at `size_wh`."""
    return sum((size_wh[0] // s) * (size_wh[1] // s) for s in YOLO_STRIDES)


def _check_actual_outputs(entry: ModelEntry, shapes: list[tuple[int, ...]], shown_as: Path) -> None:
    """The shapes a run returned agree with the family (anchor counts of raw heads, batch of one)."""
    w, h = entry.input_size_wh
    anchors = _anchor_count(entry.input_size_wh)
    first = shapes[0]
    problem = ""
    if entry.family == "yolox" and first[:2] != (1, anchors):
        problem = f"expected [1, {anchors}, {5 + len(entry.classes)}] (strides {list(YOLO_STRIDES)})"
    elif entry.family == "yolov8" and (first[0] != 1 or first[1] != 4 + len(entry.classes)):
        problem = f"expected [1, {4 + len(entry.classes)}, anchors]"
    elif entry.family == "rtmdet" and (shapes[0][2:] != (5,) or shapes[1][:2] != first[:2]):
        problem = "expected dets [1, N, 5] and labels [1, N]"
    if problem:
        raise ImportModelError(
            f"{shown_as}: a test run at {w}x{h} returned outputs {shapes}; the {entry.family} family "
            f"{problem}"
        )


def _check_not_taken(model_id: str, digest: str, allow_replace: bool, *, shown_as: Path) -> None:
    """Refuse another file under an imported id unless replacing is allowed (the same file again is fine)."""
    previous = local_entries().get(model_id)
    if previous is not None and digest not in previous.sha256 and not allow_replace:
        raise ImportModelError(
            f"{shown_as}: model id {model_id!r} is already imported with another file (sha256 "
            f"{previous.sha256[0]}); pass --replace to replace it"
        )


def _install(staged: VerifiedModel, *, shown_as: Path) -> VerifiedModel:
    from vision_models.local_registry import write_local_entry

    entry = staged.entry
    directory = import_dir()
    target = directory / entry.file_name
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=directory, prefix=".import-", suffix=".onnx", delete=False
        ) as tmp:
            staged_copy = Path(tmp.name)
        try:
            shutil.copyfile(staged.path, staged_copy)
            staged_copy.replace(target)
        finally:
            staged_copy.unlink(missing_ok=True)
        registry_path = write_local_entry(directory, entry)
    except OSError as exc:
        raise ImportModelError(
            f"{shown_as}: cannot write into the model directory {directory}: {exc}"
        ) from None
    log.info("imported %s from %s into %s (registered in %s)", entry.id, shown_as, target, registry_path)
    return VerifiedModel(entry=entry, path=target, sha256=staged.sha256)
