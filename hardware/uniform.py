"""`showroom hardware uniform`: learn the staff uniform colour from a snapshot and prove it separates staff.

The installer marks staff on a camera snapshot (`--boxes x,y,w,h`, person boxes in the snapshot's pixels).
Their torsos (`edge.cues.uniform.torso_crop`) give the uniform colour and tolerance in OpenCV HSV
(`calibrate_uniform`). The learnt cue is then applied, exactly as the node applies it (`wears_uniform`), to
the marked staff and to the other people: the `--others` boxes, or every other person the configured
detector finds in the snapshot. The share of people it classifies right is the separation; below 100% the
cue would mark visitors as staff (or miss staff), and nothing is written.

`--write` puts the cue into the node config's top-level `staff_appearance` block. Only that block's text is
replaced (or appended when absent); every other line of the file, comments included, is kept as it was.
The result is validated as a node config before the file is touched. Nothing of the snapshot is stored:
only the colour numbers.

Exit status: 0 the cue separates staff from the others; 1 it does not; 2 unusable input.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click
import cv2
import numpy as np
import numpy.typing as npt
import yaml

from edge.config import ConfigError, NodeConfig, StaffAppearance, load_config, parse_config
from edge.cues.uniform import calibrate_uniform, torso_crop, uniform_fraction
from vision_models.registry import ModelError

Image = npt.NDArray[np.uint8]
XYWH = tuple[float, float, float, float]
OVERLAP_IOU = 0.3
"""A detection overlapping a marked staff box this much is that staff member, not another person."""


class UniformInputError(ValueError):
    """An input the command cannot use; the message names the file, option or box and why."""


@dataclass(frozen=True)
class Separation:
    """How the learnt cue classifies the marked staff and the other people of the snapshot.

    Attributes:
        appearance: the learnt cue.
        staff_fractions, other_fractions: share of each torso within the uniform colour, in box order.
        staff_flagged, others_flagged: which boxes `wears_uniform` marks staff.
    """

    appearance: StaffAppearance
    staff_fractions: list[float]
    other_fractions: list[float]
    staff_flagged: list[bool]
    others_flagged: list[bool]

    @property
    def correct(self) -> int:
        return sum(self.staff_flagged) + sum(not f for f in self.others_flagged)

    @property
    def total(self) -> int:
        return len(self.staff_flagged) + len(self.others_flagged)

    @property
    def rate(self) -> float:
        """Share of people classified right (staff flagged, others not), 0..1."""
        return self.correct / self.total if self.total else 0.0


def parse_xywh(text: str, option: str) -> XYWH:
    """`x,y,w,h` in pixels; `UniformInputError` naming the option and value otherwise."""
    parts = text.split(",")
    try:
        x, y, w, h = (float(p) for p in parts)
    except ValueError:
        raise UniformInputError(
            f"{option} {text!r}: expected x,y,w,h in pixels, e.g. 120,80,60,170"
        ) from None
    if w <= 0 or h <= 0:
        raise UniformInputError(f"{option} {text!r}: width and height must be positive")
    return x, y, w, h


def xyxy_of(box: XYWH) -> npt.NDArray[np.float64]:
    x, y, w, h = box
    return np.array([x, y, x + w, y + h], dtype=np.float64)


def torso_crops(image: Image, boxes: list[XYWH], option: str) -> list[Image]:
    """The torso crop of each box; `UniformInputError` for a box outside the image or too small."""
    height, width = image.shape[:2]
    crops = []
    for box in boxes:
        x, y, w, h = box
        if x < 0 or y < 0 or x + w > width or y + h > height:
            raise UniformInputError(
                f"{option} {x:g},{y:g},{w:g},{h:g} lies outside the {width} x {height} snapshot"
            )
        crop = torso_crop(image, xyxy_of(box))
        if crop is None:
            raise UniformInputError(f"{option} {x:g},{y:g},{w:g},{h:g} is too small to see a torso")
        crops.append(crop)
    return crops


def learn_uniform(staff: list[Image], others: list[Image], base: StaffAppearance | None = None) -> Separation:
    """The uniform cue from staff torso crops, and how it classifies `staff` and `others`.

    The colour and tolerance come from `calibrate_uniform`. The share of torso pixels that marks a person
    staff (`min_fraction`) is set half way between the least uniform staff torso and the most uniform other
    one when they are apart; otherwise it stays at `base`'s (or the default). `min_observations` is `base`'s.
    """
    hsv, tolerance = calibrate_uniform(staff)
    fields: dict[str, Any] = {} if base is None else base.model_dump()
    fields.update(uniform_hsv=hsv, tolerance_hsv=tolerance)
    draft = StaffAppearance.model_validate(fields)
    staff_fr = [uniform_fraction(c, draft) for c in staff]
    other_fr = [uniform_fraction(c, draft) for c in others]
    if other_fr and min(staff_fr) > max(other_fr):
        fields["min_fraction"] = round(min(1.0, max(0.05, (min(staff_fr) + max(other_fr)) / 2)), 3)
    appearance = StaffAppearance.model_validate(fields)

    def flagged(crop: Image) -> bool:
        return uniform_fraction(crop, appearance) >= appearance.min_fraction

    return Separation(
        appearance=appearance,
        staff_fractions=staff_fr,
        other_fractions=other_fr,
        staff_flagged=[flagged(c) for c in staff],
        others_flagged=[flagged(c) for c in others],
    )


def _iou(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def detected_others(image: Image, config: NodeConfig, staff: list[XYWH]) -> list[XYWH]:
    """Every person the configured detector finds in `image` that is not one of the marked staff boxes.

    Raises `vision_models.registry.ModelError` (or an OSError) when the model cannot be loaded."""
    from vision_models.detector import load_detector  # ONNX Runtime: only when no --others are given

    det = config.detector
    detector = load_detector(
        det.model, input_size_wh=det.input_size_wh, score_threshold=det.score_threshold, threads=det.threads
    )
    found = detector.detect(image)
    staff_xyxy = [xyxy_of(b) for b in staff]
    others: list[XYWH] = []
    for x1, y1, x2, y2 in np.asarray(found.xyxy, dtype=np.float64).tolist():
        box = np.array([x1, y1, x2, y2])
        if all(_iou(box, s) < OVERLAP_IOU for s in staff_xyxy):
            others.append((x1, y1, x2 - x1, y2 - y1))
    return others


_TOP_LEVEL_KEY = re.compile(r"^[A-Za-z_][\w-]*\s*:")


def replace_block(text: str, key: str, block: str) -> str:
    """`text` (YAML) with its top-level `key:` block replaced by `block` (appended when absent). The block
    runs from the `key:` line to the next top-level key; comment lines just before that key stay with it."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(rf"^{re.escape(key)}\s*:", line)), None)
    if not block.endswith("\n"):
        block += "\n"
    if start is None:
        sep = "" if not text or text.endswith("\n") else "\n"
        return text + sep + "\n" + block
    end = start + 1
    while end < len(lines) and not _TOP_LEVEL_KEY.match(lines[end]):
        end += 1
    # Blank and comment lines directly above the next key belong to it.
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1
    return "".join([*lines[:start], block, *lines[end:]])


def appearance_block(appearance: StaffAppearance) -> str:
    """The `staff_appearance:` YAML block of `appearance` (flow lists, as the examples write them)."""

    def nums(values: tuple[float, ...]) -> str:
        return "[" + ", ".join(f"{v:g}" for v in values) + "]"

    return (
        "staff_appearance:                 # learnt by `showroom hardware uniform` from marked staff\n"
        f"  uniform_hsv: {nums(appearance.uniform_hsv)}\n"
        f"  tolerance_hsv: {nums(appearance.tolerance_hsv)}\n"
        f"  min_fraction: {appearance.min_fraction:g}\n"
        f"  min_observations: {appearance.min_observations}\n"
    )


def write_appearance(config_file: Path, appearance: StaffAppearance) -> None:
    """Put `appearance` into `config_file`, keeping every other line; validated before writing."""
    text = config_file.read_text(encoding="utf-8")
    new_text = replace_block(text, "staff_appearance", appearance_block(appearance))
    parse_config(yaml.safe_load(new_text), str(config_file))  # ConfigError: the file is left as it was
    config_file.write_text(new_text, encoding="utf-8")


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@click.command("uniform")
@click.option("--config", "config_file", required=True, type=click.Path(path_type=Path), help="Node YAML.")
@click.option("--camera", "camera_id", required=True, help="The camera the snapshot comes from.")
@click.option("--snapshot", required=True, type=click.Path(path_type=Path), help="A frame of that camera.")
@click.option("--boxes", "staff_boxes", multiple=True, required=True, help="A staff member: x,y,w,h pixels.")
@click.option(
    "--others",
    "other_boxes",
    multiple=True,
    help="Someone who is not staff: x,y,w,h pixels. Without any, the detector finds the other people.",
)
@click.option("--write", is_flag=True, help="Write the learnt cue into the config's staff_appearance.")
def uniform_command(
    config_file: Path,
    camera_id: str,
    snapshot: Path,
    staff_boxes: tuple[str, ...],
    other_boxes: tuple[str, ...],
    write: bool,
) -> None:
    """Learn the staff uniform colour from staff marked on a snapshot; report how well it separates them
    from the other people (exit 1 when it does not) and, with --write, store it in the config."""
    try:
        config = load_config(config_file)
    except ConfigError as exc:
        _fail(str(exc))
    try:
        ids = [c.id for c in config.cameras]
        if camera_id not in ids:
            raise UniformInputError(
                f"{config_file}: no camera {camera_id!r} in cameras (known: {', '.join(ids)})"
            )
        if not snapshot.is_file():
            raise UniformInputError(f"{snapshot}: snapshot not found")
        read = cv2.imread(str(snapshot), cv2.IMREAD_COLOR)
        if read is None:
            raise UniformInputError(f"{snapshot}: cannot read the snapshot (not an image OpenCV can decode)")
        image: Image = np.asarray(read, dtype=np.uint8)
        staff = [parse_xywh(b, "--boxes") for b in staff_boxes]
        others = [parse_xywh(b, "--others") for b in other_boxes]
        staff_crops = torso_crops(image, staff, "--boxes")
        other_crops = torso_crops(image, others, "--others")
    except UniformInputError as exc:
        _fail(str(exc))
    if not others:
        try:
            others = detected_others(image, config, staff)
            other_crops = [c for c in (torso_crop(image, xyxy_of(b)) for b in others) if c is not None]
            click.echo(f"detector {config.detector.model}: {len(other_crops)} other people in the snapshot")
        except (ModelError, OSError, RuntimeError) as exc:  # no model: the cue is learnt, not compared
            click.echo(
                f"warning: no detector to find the other people ({exc}); give --others boxes", err=True
            )
    result = learn_uniform(staff_crops, other_crops, config.staff_appearance)
    a = result.appearance
    click.echo(
        f"uniform colour HSV {list(a.uniform_hsv)} +/- {list(a.tolerance_hsv)}, "
        f"a torso at least {a.min_fraction:.0%} in it marks staff"
    )
    for i, (fr, hit) in enumerate(zip(result.staff_fractions, result.staff_flagged, strict=True)):
        click.echo(f"  staff  {i}: {fr:.0%} of the torso in uniform -> {'staff' if hit else 'MISSED'}")
    for i, (fr, hit) in enumerate(zip(result.other_fractions, result.others_flagged, strict=True)):
        click.echo(
            f"  other  {i}: {fr:.0%} of the torso in uniform -> {'WRONGLY STAFF' if hit else 'not staff'}"
        )
    separated = result.correct == result.total
    if other_crops:
        click.echo(
            f"separation {result.rate:.0%} ({result.correct} of {result.total} people classified right)"
        )
    else:
        click.echo("separation not measured: no other people to compare with")
    if not separated:
        click.echo("the uniform colour does not separate staff from the others; not written", err=True)
        sys.exit(1)
    if write:
        try:
            write_appearance(config_file, a)
        except (ConfigError, OSError) as exc:
            _fail(f"{config_file}: not written: {exc}")
        click.echo(f"staff_appearance written to {config_file} (the rest of the file unchanged)")
