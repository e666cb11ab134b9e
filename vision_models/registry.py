"""Registry of models: where each file comes from, its accepted checksums, licence and formats.

Two tasks share the registry: person detectors (`task == "detect"`: RTMDet, YOLOX, YOLOv8), loaded by
`vision_models.detector`, and person re-identification models (`task == "reid"`: an appearance embedding of
one person crop), loaded by `vision_models.reid`. Detector-only tools (detector CLIs, quantisation) ask for
`model_ids("detect")`.

Model files are never shipped with the product. They are looked up, in order, in
`SHOWROOM_MODEL_DIR` (an offline directory an installer fills) and then in the user cache directory that
`showroom models fetch` and `showroom models quantize` write to. Every load verifies the file's sha256 against
the registry entry; a missing or altered file is an error, never a silent fallback to another model.

Besides the built-in models below, each searched directory may hold a local registry file
(`registry.local.yaml`, written by `showroom models import`) with detectors imported on this machine: the
same entry type and the same checks as the built-in ones (`vision_models.local_registry`). A local entry
never overrides a built-in id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

MODEL_DIR_ENV = "SHOWROOM_MODEL_DIR"
CACHE_DIR_ENV = "SHOWROOM_CACHE_DIR"
INT8_SUFFIX = "-int8"

Family = Literal["rtmdet", "yolox", "yolov8", "reid"]
Task = Literal["detect", "reid"]
ChannelOrder = Literal["bgr", "rgb"]

DETECTOR_FAMILIES: dict[str, str] = {
    "rtmdet": "final boxes from a graph with NMS inside: `dets` [B, N, 5] (x1,y1,x2,y2,score in input "
    "pixels) and `labels` [B, N] (mmdeploy end2end export)",
    "yolox": "raw YOLOX head [B, anchors, 5 + C] (grid offsets, log sizes, objectness, class scores), "
    "decoded with strides 8/16/32, NMS in code",
    "yolov8": "Ultralytics YOLOv8/YOLO11 head [B, 4 + C, anchors] (cx,cy,w,h in input pixels, class "
    "scores), NMS in code",
}
"""Detector output families (`--postprocess` of `showroom models import`), each with its decoder."""

OUTPUT_COUNT: dict[str, int] = {"rtmdet": 2, "yolox": 1, "yolov8": 1, "reid": 1}


class ModelError(RuntimeError):
    """A model cannot be used: unknown id, missing file, wrong checksum, not ONNX, or a format mismatch."""


class UnknownModelError(ModelError):
    """The id is not in the registry."""


class ModelNotFoundError(ModelError):
    """No file for a registered model in any searched directory."""


class ChecksumError(ModelError):
    """A model file's sha256 is not one the registry accepts."""


class ModelFormatError(ModelError):
    """A file is not a loadable ONNX model, or its inputs/outputs differ from its registry entry."""


class EntryError(ModelError):
    """A registry entry whose fields contradict each other (built-in or from a local registry file)."""


@dataclass(frozen=True)
class Preprocess:
    """How a BGR uint8 frame becomes the network input.

    Detectors: keep-ratio resize into the input size, padded at the bottom/right with `pad_value`, then
    `(pixel - mean) / std` per channel (mean 0, std 1 means raw 0..255 values), NCHW float32, channels in
    `channel_order`. `mean_bgr` and `std_bgr` are indexed by the frame's B, G, R channels whatever the order
    the network takes them in.
    Re-identification models: each person crop is resized to the input size without keeping its ratio
    (`pad_value` unused), then normalised the same way, in the layout the network declares.
    """

    mean_bgr: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std_bgr: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pad_value: int = 114
    channel_order: ChannelOrder = "bgr"

    def __post_init__(self) -> None:
        if not all(s > 0 for s in self.std_bgr):
            raise EntryError(f"preprocess std must be > 0 per channel, got {self.std_bgr}")
        if not 0 <= self.pad_value <= 255:
            raise EntryError(f"preprocess pad_value must lie in 0..255, got {self.pad_value}")
        if self.channel_order not in ("bgr", "rgb"):
            raise EntryError(f"preprocess channel_order must be bgr or rgb, got {self.channel_order!r}")


@dataclass(frozen=True)
class Postprocess:
    """How raw outputs become person boxes.

    `nms_in_graph`: the network already returns final boxes (`dets` [B,N,5] + `labels` [B,N]).
    Otherwise the output is a raw head (YOLOX [B, A, 5 + C] decoded with `strides`, or YOLOv8 [B, 4 + C, A])
    filtered with NMS at `nms_iou`. `person_class` is the class index kept; all other classes are dropped.
    """

    nms_in_graph: bool
    person_class: int = 0
    strides: tuple[int, ...] = ()
    nms_iou: float = 0.45
    max_detections: int = 300


@dataclass(frozen=True)
class ModelEntry:
    """One registered model.

    Attributes:
        id: registry id used in configs and on the command line.
        family: decoder family (`rtmdet`, `yolox`) or `reid` for an appearance-embedding model.
        file_name: file name looked up in the model directories.
        url: official download URL (a `.zip` when the model is published as an archive).
        archive_member: path of the ONNX file inside the archive, when `url` is an archive.
        sha256: accepted sha256 values of the ONNX file (several when equivalent exports exist).
        licence: licence of the weights.
        provenance: where the accepted files were checked to come from, and how sure that is.
        input_size_wh: default network input (width, height): the fixed size of a fixed-size model; for a
            dynamic one, the size chosen from the accuracy/speed measurements in BENCHMARKS.md.
        dynamic_input: whether the network accepts other input sizes (multiples of `size_multiple`).
        size_multiple: input width and height must be multiples of this.
        classes: class names of the network's output, in index order (empty for a `reid` model).
        input_name: the network's input tensor name; `output_names` in order.
        postprocess: how a detector's outputs become boxes; None for a `reid` model.
        embedding_dim: length of a `reid` model's embedding vector; None for a detector.
        quantised_from: for a locally produced INT8 variant, the id of the float model it was made from.
        imported: True for a detector imported on this machine (`showroom models import`), kept in a local
            registry file rather than in this module.
    """

    id: str
    family: Family
    file_name: str
    url: str
    sha256: tuple[str, ...]
    licence: str
    provenance: str
    input_size_wh: tuple[int, int]
    dynamic_input: bool
    classes: tuple[str, ...]
    input_name: str
    output_names: tuple[str, ...]
    preprocess: Preprocess
    postprocess: Postprocess | None
    archive_member: str | None = None
    size_multiple: int = 32
    dynamic_batch: bool = False
    quantised_from: str | None = None
    embedding_dim: int | None = None
    notes: str = ""
    imported: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise EntryError(f"{self.id}: inconsistent registry entry: {'; '.join(problems)}")

    def _problems(self) -> list[str]:
        problems: list[str] = []
        if not self.id or not self.file_name:
            problems.append("id and file_name must not be empty")
        if any(len(d) != 64 or any(c not in "0123456789abcdef" for c in d) for d in self.sha256):
            problems.append(f"sha256 values must be 64 lowercase hex digits, got {list(self.sha256)}")
        if len(self.output_names) != OUTPUT_COUNT.get(self.family, -1):
            problems.append(
                f"a {self.family} model has {OUTPUT_COUNT.get(self.family)} output(s), "
                f"got {list(self.output_names)}"
            )
        w, h = self.input_size_wh
        if self.family == "reid":
            if self.postprocess is not None or self.embedding_dim is None or self.embedding_dim < 1:
                problems.append("a reid entry has an embedding_dim >= 1 and no postprocess")
            return problems
        post = self.postprocess
        if post is None or self.embedding_dim is not None:
            return [*problems, "a detector entry has a postprocess and no embedding_dim"]
        if w <= 0 or h <= 0 or w % self.size_multiple or h % self.size_multiple:
            problems.append(f"input size {w}x{h} must be positive multiples of {self.size_multiple}")
        if not 0 <= post.person_class < len(self.classes):
            problems.append(
                f"person_class {post.person_class} is not an index of {len(self.classes)} classes"
            )
        if post.nms_in_graph != (self.family == "rtmdet"):
            problems.append(f"nms_in_graph must be {self.family == 'rtmdet'} for the {self.family} family")
        if self.family == "yolox" and not post.strides:
            problems.append("a yolox entry needs its head's strides")
        if not 0 < post.nms_iou < 1 or post.max_detections < 1:
            problems.append(f"nms_iou must lie in (0, 1) and max_detections be >= 1, got {post}")
        return problems

    @property
    def task(self) -> Task:
        """`reid` for an appearance-embedding model, `detect` for a person detector."""
        return "reid" if self.family == "reid" else "detect"

    def check_input_size(self, size_wh: tuple[int, int]) -> None:
        """Raise ModelError when this model cannot run at `size_wh` (width, height)."""
        w, h = size_wh
        if w <= 0 or h <= 0:
            raise ModelError(f"{self.id}: input size must be positive, got {w}x{h}")
        if not self.dynamic_input and size_wh != self.input_size_wh:
            native = f"{self.input_size_wh[0]}x{self.input_size_wh[1]}"
            raise ModelError(f"{self.id}: fixed input size {native}; cannot run at {w}x{h}")
        if w % self.size_multiple or h % self.size_multiple:
            raise ModelError(
                f"{self.id}: input width and height must be multiples of {self.size_multiple}, got {w}x{h}"
            )


COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

RTMDET_NANO_PERSON = ModelEntry(
    id="rtmdet-nano-person",
    family="rtmdet",
    file_name="rtmdet_nano_person.onnx",
    url=(
        "https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/onnx_sdk/"
        "rtmdet_nano_8xb32-100e_coco-obj365-person-05d8511e.zip"
    ),
    archive_member="rtmdet_nano_8xb32-100e_coco-obj365-person-05d8511e/end2end.onnx",
    sha256=("4720eda18a18402e7b76d85827d4bc60fba18111fc0b74b559e4d24da9ddc3d2",),
    licence="Apache-2.0 (OpenMMLab)",
    provenance=(
        "unverified provenance: metadata matches an mmdeploy export of RTMPose's person detector "
        "(rtmdet_nano_8xb32-100e_coco-obj365-person-05d8511e, OpenMMLab ONNX SDK zip); the accepted file "
        "has not been matched byte-for-byte with the official archive"
    ),
    # 544x416, not 480x384: AP50 0.935 against 0.927 on PETS09-S2L1 for ~14% more inference CPU
    # (BENCHMARKS.md, "Detection"); 480x384 stays a good choice for boxes short of CPU.
    input_size_wh=(544, 416),
    dynamic_input=True,
    dynamic_batch=True,
    classes=("person",),
    input_name="input",
    output_names=("dets", "labels"),
    preprocess=Preprocess(mean_bgr=(103.53, 116.28, 123.675), std_bgr=(57.375, 57.12, 58.395), pad_value=114),
    postprocess=Postprocess(nms_in_graph=True, person_class=0),
    notes="NMS inside the graph; any input size that is a multiple of 32 (e.g. 640x384 for 16:9 cameras).",
)

YOLOX_NANO = ModelEntry(
    id="yolox-nano",
    family="yolox",
    file_name="yolox_nano_416.onnx",
    url="https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_nano.onnx",
    sha256=(
        # Export with the official weights, checked against two independent exports.
        "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14",
        # The official release file (3,659,407 B): same weights, different byte layout.
        "c789161ed43c8269fcd4e67c67eeeb4e80c622da2eb296a20bc6007bd18a0b7d",
    ),
    licence="Apache-2.0 (Megvii YOLOX)",
    provenance="official yolox_nano weights (Megvii release 0.1.1rc0); both accepted files checked",
    input_size_wh=(416, 416),
    dynamic_input=False,
    classes=COCO_CLASSES,
    input_name="images",
    output_names=("output",),
    preprocess=Preprocess(pad_value=114),
    postprocess=Postprocess(nms_in_graph=False, person_class=0, strides=(8, 16, 32), nms_iou=0.45),
    notes="COCO-80 raw head output; decoded and filtered with NMS in code; fixed 416x416 input.",
)

PERSON_REID_0288 = ModelEntry(
    id="person-reid-0288",
    family="reid",
    file_name="person-reidentification-retail-0288.onnx",
    # The NHWC ONNX conversion published by PINTO_model_zoo (083_Person_Reidentification), a tar.gz archive.
    url="https://drive.google.com/uc?export=download&id=1BEHZ5hRGEmFxV1rXCa8oGo062euo0bmL",
    archive_member="model_float32.onnx",
    sha256=("f3966d905e7232026aa8b814c328231a7b45c5b6b4dd32f886894223c4441b80",),
    licence="Apache-2.0 (Intel Open Model Zoo)",
    provenance=(
        "unverified provenance: Intel Open Model Zoo person-reidentification-retail-0288 (OSNet-based, "
        "PyTorch-trained, published as OpenVINO IR), converted IR -> TensorFlow -> ONNX: the file's graph "
        "is tf2onnx 1.7.2 output (opset 12) with openvino2tensorflow's layer names and the `inputs:0` / "
        "`Identity:0` tensors of PINTO_model_zoo's conversion of this model; the accepted file has not been "
        "matched byte-for-byte with that archive"
    ),
    input_size_wh=(128, 256),
    dynamic_input=False,
    classes=(),
    input_name="inputs:0",
    output_names=("Identity:0",),
    # Raw BGR 0..255: the graph itself swaps to RGB and applies the ImageNet mean/std (its first nodes), as
    # OMZ's IR does. Measured on PETS09-S2L1, raw BGR separates people best (BENCHMARKS.md).
    preprocess=Preprocess(),
    postprocess=None,
    embedding_dim=256,
    notes="NHWC input [1,256,128,3] (batch fixed to 1); 256-value embedding compared by cosine.",
)

MODELS: dict[str, ModelEntry] = {m.id: m for m in (RTMDET_NANO_PERSON, YOLOX_NANO, PERSON_REID_0288)}
DEFAULT_MODEL_ID = RTMDET_NANO_PERSON.id


def local_entries() -> dict[str, ModelEntry]:
    """Detectors imported on this machine, from the local registry file of each searched directory (the
    first directory wins an id found in several)."""
    from vision_models.local_registry import read_local_entries  # the file format needs this module's types

    entries: dict[str, ModelEntry] = {}
    for directory in search_dirs():
        for entry in read_local_entries(directory):
            entries.setdefault(entry.id, entry)
    return entries


def all_entries() -> dict[str, ModelEntry]:
    """Built-in and imported float models by id (built-in ids first; an imported entry never shadows one)."""
    return {**local_entries(), **MODELS}


def model_ids(task: Task | None = "detect") -> list[str]:
    """Registered float model ids of `task` (every task when None), the default detector first; imported
    detectors follow the built-in models."""
    entries = all_entries()
    ids = [i for i, e in entries.items() if task is None or e.task == task]
    return sorted(ids, key=lambda i: (i != DEFAULT_MODEL_ID, entries[i].imported, i))


TASK_NAMES: dict[Task, str] = {"detect": "person detector", "reid": "re-identification model"}


def require_task(entry: ModelEntry, task: Task) -> None:
    """Raise ModelError when `entry` is a model for another task than `task` (a detector named where a
    re-identification model belongs, or the reverse), naming the registered models of `task`."""
    if entry.task != task:
        raise ModelError(
            f"{entry.id} is a {TASK_NAMES[entry.task]}, not a {TASK_NAMES[task]}; "
            f"registered: {', '.join(model_ids(task))}"
        )


def model_dir() -> Path | None:
    """The offline model directory from `SHOWROOM_MODEL_DIR`, or None when unset."""
    value = os.environ.get(MODEL_DIR_ENV)
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """The user cache directory for fetched and quantised models (`SHOWROOM_CACHE_DIR` overrides)."""
    value = os.environ.get(CACHE_DIR_ENV)
    if value:
        return Path(value).expanduser() / "models"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "showroom-vision" / "models"


def search_dirs() -> list[Path]:
    """Directories searched for model files, in order."""
    dirs = [d for d in (model_dir(), cache_dir()) if d is not None]
    return list(dict.fromkeys(dirs))


def get_entry(model_id: str | None = None) -> ModelEntry:
    """The registry entry for `model_id` (default model when None), including local INT8 variants.

    An id ending in `-int8` names the INT8 variant of a registered model, produced on this machine by
    `showroom models quantize`; its accepted checksum comes from the record written next to it.
    """
    model_id = model_id or DEFAULT_MODEL_ID
    if model_id in MODELS:
        return MODELS[model_id]
    entries = all_entries()
    if model_id in entries:
        return entries[model_id]
    base = entries.get(model_id.removesuffix(INT8_SUFFIX)) if model_id.endswith(INT8_SUFFIX) else None
    if base is not None and base.task == "detect":
        return int8_entry(base)
    known = ", ".join(model_ids(None))
    raise UnknownModelError(
        f"unknown model id {model_id!r}; registered: {known} (and the detectors' '-int8' variants)"
    )


def int8_file_name(base: ModelEntry) -> str:
    return Path(base.file_name).stem + "_int8.onnx"


def int8_record_path(base: ModelEntry) -> Path:
    return cache_dir() / (Path(base.file_name).stem + "_int8.json")


def int8_entry(base: ModelEntry) -> ModelEntry:
    """Entry of the locally quantised variant of `base`; its sha256 comes from the quantisation record."""
    record_path = int8_record_path(base)
    accepted: tuple[str, ...] = ()
    if record_path.is_file():
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            accepted = (str(record["sha256"]),)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"unreadable quantisation record {record_path}: {exc}") from exc
    return ModelEntry(
        id=base.id + INT8_SUFFIX,
        family=base.family,
        file_name=int8_file_name(base),
        url="",
        sha256=accepted,
        licence=base.licence,
        provenance=f"INT8 quantised on this machine from {base.id} with onnxruntime.quantization",
        input_size_wh=base.input_size_wh,
        dynamic_input=base.dynamic_input,
        dynamic_batch=base.dynamic_batch,
        classes=base.classes,
        input_name=base.input_name,
        output_names=base.output_names,
        preprocess=base.preprocess,
        postprocess=base.postprocess,
        size_multiple=base.size_multiple,
        quantised_from=base.id,
        notes=f"run `showroom models quantize {base.id}` to produce it",
    )


def sha256_of(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class VerifiedModel:
    """A model file found on disk whose sha256 is one the registry accepts."""

    entry: ModelEntry
    path: Path
    sha256: str


def find_file(entry: ModelEntry) -> Path | None:
    """First existing file for `entry` in the searched directories, without verifying it."""
    for directory in search_dirs():
        candidate = directory / entry.file_name
        if candidate.is_file():
            return candidate
    return None


def verify_file(entry: ModelEntry, path: Path) -> VerifiedModel:
    """Check `path`'s sha256 against `entry`; raise ChecksumError naming both values otherwise."""
    try:
        digest = sha256_of(path)
    except OSError as exc:
        raise ModelNotFoundError(f"{entry.id}: cannot read {path}: {exc}") from exc
    if digest not in entry.sha256:
        accepted = ", ".join(entry.sha256) or "none recorded"
        raise ChecksumError(
            f"{entry.id}: {path} has sha256 {digest}, expected one of: {accepted}. The file is corrupt or a "
            f"different model; replace it ({_restore_hint(entry)}) or fix {MODEL_DIR_ENV}."
        )
    return VerifiedModel(entry=entry, path=path, sha256=digest)


def _restore_hint(entry: ModelEntry) -> str:
    if entry.quantised_from:
        return f"showroom models quantize {entry.quantised_from}"
    if entry.imported:
        return f"showroom models import FILE --id {entry.id} --replace"
    return f"showroom models fetch {entry.id}"


def import_dir() -> Path:
    """Where `showroom models import` puts a model and its local registry entry: `SHOWROOM_MODEL_DIR` when
    set (the directory an installer fills, so imported models travel with the others), else the user cache."""
    return model_dir() or cache_dir()


def resolve(model_id: str | None = None) -> VerifiedModel:
    """Find and verify the file of `model_id` (default model when None).

    Raises:
        UnknownModelError: the id is not registered.
        ModelNotFoundError: no file in `SHOWROOM_MODEL_DIR` nor the cache directory.
        ChecksumError: the file found does not have an accepted sha256 (no other file is tried).
    """
    entry = get_entry(model_id)
    path = find_file(entry)
    if path is None:
        searched = ", ".join(str(d) for d in search_dirs())
        if entry.quantised_from or entry.imported:
            hint = f"run `{_restore_hint(entry)}`"
        else:
            hint = (
                f"put it in the directory named by {MODEL_DIR_ENV} or run `showroom models fetch {entry.id}` "
                f"(official source: {entry.url})"
            )
        env_note = "" if model_dir() is not None else f" ({MODEL_DIR_ENV} is not set)"
        raise ModelNotFoundError(f"{entry.id}: {entry.file_name} not found in: {searched}{env_note}; {hint}")
    return verify_file(entry, path)


@dataclass(frozen=True)
class ModelStatus:
    """What `showroom models list` shows for one model."""

    entry: ModelEntry
    path: Path | None
    verified: bool
    problem: str


def status(model_id: str) -> ModelStatus:
    entry = get_entry(model_id)
    path = find_file(entry)
    if path is None:
        return ModelStatus(entry, None, False, "missing")
    try:
        verify_file(entry, path)
    except ModelError as exc:
        return ModelStatus(entry, path, False, str(exc))
    return ModelStatus(entry, path, True, "")


ProgressCallback = Callable[[int, int | None], None]
