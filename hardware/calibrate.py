"""`showroom hardware calibrate`: check one camera's floor calibration pair by pair and draw it for the eye.

Each pair's held-out error is measured against a fit of the other pairs (`edge.floor.calibration_check`,
the same check the node runs at `check-config` and `run --check`), so a calibration through a wrongly
measured mark cannot pass. The overlay PNG shows the floor grid, doors, car zones and staff areas projected
into the camera's snapshot, and each mark's image point joined to where its floor position lands.

Exit status: 0 the calibration is good (perhaps with warnings), 1 it is rejected (the pairs to re-measure are
named as `calibration[i]`, their index in the config), 2 the input cannot be used (unreadable config or
snapshot, unknown camera, a camera without calibration, floor marks written in pixels).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import NoReturn

import click
import cv2
import numpy as np

from edge.config import ConfigError, NodeConfig, load_config
from edge.floor.calibration_check import check_camera
from edge.floor.calibration_report import CalibrationReport
from hardware.overlay import Image, draw_calibration, grey_canvas


class CalibrateInputError(ValueError):
    """An input the command cannot use; the message names the file or key and why."""


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def camera_index(config: NodeConfig, camera_id: str, source: Path) -> int:
    """Position of `camera_id` in the config's `cameras`; `CalibrateInputError` naming the known ids."""
    ids = [c.id for c in config.cameras]
    if camera_id not in ids:
        raise CalibrateInputError(f"{source}: no camera {camera_id!r} in cameras (known: {', '.join(ids)})")
    return ids.index(camera_id)


def load_canvas(snapshot: Path | None, config: NodeConfig, index: int, source: Path) -> Image:
    """The camera's snapshot (BGR), or a grey canvas of its calibration resolution without one."""
    camera = config.cameras[index]
    if snapshot is None:
        if camera.resolution_wh is not None:
            return grey_canvas(camera.resolution_wh)
        assert camera.calibration is not None
        pts = np.asarray(camera.calibration.image_points_px, dtype=np.float64)
        w, h = (max(320, math.ceil(v * 1.05)) for v in pts.max(axis=0))
        return grey_canvas((w, h))
    if not snapshot.is_file():
        raise CalibrateInputError(f"{snapshot}: snapshot not found")
    image = cv2.imread(str(snapshot), cv2.IMREAD_COLOR)
    if image is None:
        raise CalibrateInputError(f"{snapshot}: cannot read the snapshot (not an image OpenCV can decode)")
    h, w = image.shape[:2]
    if camera.resolution_wh is not None and tuple(camera.resolution_wh) != (w, h):
        rw, rh = camera.resolution_wh
        raise CalibrateInputError(
            f"{snapshot}: snapshot is {w} x {h} pixels but {source} cameras[{index}].resolution_wh is "
            f"{rw} x {rh}; the calibration's image points refer to that size"
        )
    return np.asarray(image, dtype=np.uint8)


def report_lines(report: CalibrationReport) -> list[str]:
    """The per-pair table, the verdict and its reasons, as printed."""
    lines = [
        f"camera {report.camera_id} (cameras[{report.camera_index}]): {len(report.pairs)} pairs; held-out "
        f"error = distance of each mark from a fit of the other pairs (limit {report.max_loo_error_m:.2f} m)",
        f"{'pair':<16}{'image px':>20}{'floor m':>22}{'held-out m':>12}{'fit m':>9}  status",
    ]
    for p in report.pairs:
        held = "-" if p.held_out_error_m is None else f"{p.held_out_error_m:.3f}"
        fit = "-" if p.fit_error_m is None else f"{p.fit_error_m:.3f}"
        status = "REJECTED" if p.rejected else "ok" if p.used_by_fit else "left out"
        lines.append(
            f"{p.key:<16}{f'({p.image_px[0]:.1f}, {p.image_px[1]:.1f})':>20}"
            f"{f'({p.floor_m[0]:.3f}, {p.floor_m[1]:.3f})':>22}{held:>12}{fit:>9}  {status}"
        )
    for f in report.problems:
        lines.append(f"problem {f.key}: {f.message}")
    for f in report.warnings:
        lines.append(f"warning {f.key}: {f.message}")
    lines.append(report.summary())
    return lines


@click.command("calibrate")
@click.option("--config", "config_file", required=True, type=click.Path(path_type=Path), help="Node YAML.")
@click.option("--camera", "camera_id", required=True, help="The camera's id in the config.")
@click.option(
    "--snapshot",
    type=click.Path(path_type=Path),
    help="A frame of the camera (PNG/JPEG) to draw on; a grey canvas of its resolution without one.",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Overlay PNG to write.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
@click.option(
    "--allow-few-points",
    is_flag=True,
    help="Accept 4-5 pairs with a warning (as calibration.allow_few_points: true in the config).",
)
def calibrate_command(
    config_file: Path,
    camera_id: str,
    snapshot: Path | None,
    out: Path,
    as_json: bool,
    allow_few_points: bool,
) -> None:
    """Check a camera's floor calibration pair by pair and draw the floor plan into its view.

    Exit 0: good; 1: rejected (the pairs to re-measure are named); 2: unusable input.
    """
    try:
        config = load_config(config_file)
    except ConfigError as exc:
        _fail(str(exc))
    try:
        index = camera_index(config, camera_id, config_file)
        if config.cameras[index].calibration is None:
            raise CalibrateInputError(
                f"{config_file}: cameras[{index}].calibration: camera {camera_id!r} has none"
            )
        report = check_camera(config, index, allow_few_points=True if allow_few_points else None)
        units = [f for f in report.problems if f.kind == "units"]
        if units:
            raise CalibrateInputError(
                "; ".join(f"{config_file}: {report.key_path(f.key)}: {f.message}" for f in units)
            )
        canvas = load_canvas(snapshot, config, index, config_file)
    except CalibrateInputError as exc:
        _fail(str(exc))
    overlay = draw_calibration(canvas, report, config)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), overlay):
        _fail(f"{out}: cannot write the overlay PNG")
    if as_json:
        click.echo(json.dumps({**report.to_dict(), "overlay": str(out)}, indent=2))
    else:
        click.echo("\n".join(report_lines(report)))
        click.echo(f"overlay written to {out}")
    if report.verdict == "reject":
        sys.exit(1)
