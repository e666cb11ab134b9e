"""The local registry file: detectors imported on this machine, beside the built-in models.

`showroom models import` writes `registry.local.yaml` into the directory the model file was copied to
(`vision_models.registry.import_dir`). Every entry holds exactly the fields of a built-in
`vision_models.registry.ModelEntry`; the file is validated strictly (unknown keys, wrong types and
out-of-range values are refused, naming the file and the key), then each entry passes the same consistency
checks as a built-in entry. `EntrySchema.from_entry` turns any entry, built-in ones included, into this form.

    models:
      - id: ceiling-yolov8n
        family: yolov8
        file_name: ceiling-yolov8n.onnx
        sha256: [<64 hex digits>]
        ...
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vision_models.registry import (
    MODELS,
    EntryError,
    ModelEntry,
    ModelError,
    Postprocess,
    Preprocess,
)

log = logging.getLogger(__name__)

LOCAL_REGISTRY_FILE = "registry.local.yaml"

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Channel = Annotated[float, Field(ge=-1e4, le=1e4)]
PositiveChannel = Annotated[float, Field(gt=0, le=1e4)]


class LocalRegistryError(ModelError):
    """A local registry file that cannot be read or does not validate (names the file and the key)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PreprocessSchema(_Model):
    mean_bgr: tuple[Channel, Channel, Channel] = Field(
        (0.0, 0.0, 0.0), description="Subtracted per frame channel B, G, R (0..255 scale)."
    )
    std_bgr: tuple[PositiveChannel, PositiveChannel, PositiveChannel] = Field(
        (1.0, 1.0, 1.0), description="Divisor per frame channel B, G, R after the mean."
    )
    pad_value: int = Field(114, ge=0, le=255, description="Letterbox padding, 0..255 pixel value.")
    channel_order: Literal["bgr", "rgb"] = Field("bgr", description="Channel order the network takes.")


class PostprocessSchema(_Model):
    nms_in_graph: bool = Field(description="The network returns final boxes (rtmdet family).")
    person_class: int = Field(0, ge=0, le=10_000, description="Class index of a person.")
    strides: tuple[Annotated[int, Field(ge=1, le=256)], ...] = Field(
        (), description="Head strides (yolox family), pixels."
    )
    nms_iou: float = Field(0.45, gt=0, lt=1, description="IoU above which NMS drops the weaker box.")
    max_detections: int = Field(300, ge=1, le=10_000, description="Most boxes kept per frame.")


class EntrySchema(_Model):
    """One model entry, field for field a `ModelEntry`."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="Registry id (configs, CLI).")
    family: Literal["rtmdet", "yolox", "yolov8", "reid"] = Field(description="Decoder family.")
    file_name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", description="File name in the model directory."
    )
    url: str = Field("", max_length=2000, description="Official download URL; empty for an imported file.")
    sha256: tuple[Sha256, ...] = Field(min_length=1, description="Accepted sha256 values of the file.")
    licence: str = Field(min_length=1, max_length=500, description="Licence of the weights.")
    provenance: str = Field(min_length=1, max_length=2000, description="Where the file comes from.")
    input_size_wh: tuple[Annotated[int, Field(ge=1, le=8192)], Annotated[int, Field(ge=1, le=8192)]] = Field(
        description="Default network input (width, height), pixels."
    )
    dynamic_input: bool = Field(description="The network accepts other input sizes.")
    classes: tuple[str, ...] = Field(max_length=10_000, description="Output class names in index order.")
    input_name: str = Field(min_length=1, description="The network's input tensor name.")
    output_names: tuple[str, ...] = Field(min_length=1, description="The network's output tensor names.")
    preprocess: PreprocessSchema
    postprocess: PostprocessSchema | None
    archive_member: str | None = None
    size_multiple: int = Field(32, ge=1, le=256, description="Input width and height are multiples of it.")
    dynamic_batch: bool = False
    quantised_from: str | None = None
    embedding_dim: int | None = Field(None, ge=1, le=100_000)
    notes: str = Field("", max_length=2000)
    imported: bool = False

    @classmethod
    def from_entry(cls, entry: ModelEntry) -> EntrySchema:
        post = entry.postprocess
        return cls(
            id=entry.id,
            family=entry.family,
            file_name=entry.file_name,
            url=entry.url,
            sha256=entry.sha256,
            licence=entry.licence,
            provenance=entry.provenance,
            input_size_wh=entry.input_size_wh,
            dynamic_input=entry.dynamic_input,
            classes=entry.classes,
            input_name=entry.input_name,
            output_names=entry.output_names,
            preprocess=PreprocessSchema(**vars(entry.preprocess)),
            postprocess=None if post is None else PostprocessSchema(**vars(post)),
            archive_member=entry.archive_member,
            size_multiple=entry.size_multiple,
            dynamic_batch=entry.dynamic_batch,
            quantised_from=entry.quantised_from,
            embedding_dim=entry.embedding_dim,
            notes=entry.notes,
            imported=entry.imported,
        )

    def to_entry(self) -> ModelEntry:
        """The `ModelEntry` (raises EntryError when fields contradict each other)."""
        fields = self.model_dump(exclude={"preprocess", "postprocess"})
        post = self.postprocess
        return ModelEntry(
            **fields,
            preprocess=Preprocess(**self.preprocess.model_dump()),
            postprocess=None if post is None else Postprocess(**post.model_dump()),
        )


class LocalRegistrySchema(_Model):
    version: Literal[1] = Field(1, description="Format version of this file.")
    models: list[EntrySchema] = Field(default_factory=list, description="Imported models.")


def local_registry_path(directory: Path) -> Path:
    return directory / LOCAL_REGISTRY_FILE


def read_local_entries(directory: Path) -> list[ModelEntry]:
    """Entries of `directory`'s local registry file (none when the file is absent).

    Raises:
        LocalRegistryError: unreadable YAML, a key or value the schema refuses, an entry whose fields
            contradict each other, an id given twice or an id of a built-in model.
    """
    path = local_registry_path(directory)
    if not path.is_file():
        return []
    schema = _read_schema(path)
    entries: list[ModelEntry] = []
    seen: set[str] = set()
    for index, item in enumerate(schema.models):
        where = f"{path}: models[{index}] ({item.id})"
        if item.id in MODELS or item.id in seen:
            owner = "a built-in model" if item.id in MODELS else "an earlier entry"
            raise LocalRegistryError(f"{where}: id is already taken by {owner}")
        if not item.imported or item.family == "reid":
            raise LocalRegistryError(f"{where}: a local entry is an imported detector (imported: true)")
        try:
            entries.append(item.to_entry())
        except EntryError as exc:
            raise LocalRegistryError(f"{where}: {exc}") from None
        seen.add(item.id)
    return entries


def _read_schema(path: Path) -> LocalRegistrySchema:
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LocalRegistryError(f"{path}: unreadable local registry: {exc}") from None
    try:
        return LocalRegistrySchema.model_validate(data if data is not None else {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise LocalRegistryError(f"{path}: invalid local registry: {problems}") from None


def write_local_entry(directory: Path, entry: ModelEntry) -> Path:
    """Add `entry` to `directory`'s local registry file, replacing an entry with the same id; the file is
    replaced atomically so a reader never sees half of it. Returns the file's path."""
    path = local_registry_path(directory)
    existing = _read_schema(path).models if path.is_file() else []
    models = [m for m in existing if m.id != entry.id] + [EntrySchema.from_entry(entry)]
    document = LocalRegistrySchema(models=models).model_dump(mode="json")
    text = (
        "# Detectors imported on this machine (`showroom models import`); read beside the built-in models.\n"
        + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    )
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".registry-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("registered %s in %s", entry.id, path)
    return path
