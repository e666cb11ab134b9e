"""`showroom hardware commission`: the installer's checklist for one node, each item passed or failed with
the value measured on this box.

Items, in order: the config is valid; each camera's calibration error; each camera opens and delivers its
fps over a short window (the node's own frame sources); the models are present with a verified checksum;
the detector is fast enough for all cameras at their fps; the broker takes the node's credentials, refuses
a publish under another store, and a test message round-trips through the aggregator; the clock is within
a second of the aggregator's; the outbox's disk budget is free. Exit status 1 when any item fails.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click
import numpy as np
import numpy.typing as npt

from edge import __version__
from edge.config import ConfigError, NodeConfig, load_config, resolve_state_path
from edge.floor.calibration import calibrate_node
from edge.floor.calibration_check import check_node_calibration
from edge.node.sources import source_kind
from hardware.broker_probe import NOT_AUTHORIZED, BrokerCheckError, BrokerSession, RoundTrip
from hardware.camera_probe import FPS_PASS_RATIO, CameraMeasure, measure_cameras, with_resolved_sources
from hardware.checklist import CheckItem, failed, html_report, text_lines
from vision_models.registry import ModelError, VerifiedModel, resolve

log = logging.getLogger(__name__)

CLOCK_MAX_OFFSET_S = 1.0
INFERENCE_RUNS = 10
DEFAULT_FRAME_WH = (1280, 720)
"""Frame size timed for a camera that delivered no image and names no `resolution_wh`."""


def _problems(exc: ConfigError) -> str:
    return "; ".join(f"{path}: {message}" for path, message in exc.problems)


# ---------------------------------------------------------------------------------------------------
# Items
# ---------------------------------------------------------------------------------------------------


def calibration_items(config: NodeConfig) -> list[CheckItem]:
    """Per camera, the check `check-config` and `showroom hardware calibrate` run: each point pair against
    a fit of the other pairs (`edge.floor.calibration_check`), its value the worst held-out error; plus one
    item for floor areas no camera sees."""
    items = []
    for report in check_node_calibration(config):
        worst = report.held_out_max_m
        detail = report.summary()
        if report.warnings:
            detail += "; warnings: " + "; ".join(f.message for f in report.warnings)
        reason = "; ".join(f"{report.key_path(f.key)}: {f.message}" for f in report.problems)
        value = None if worst is None else round(worst, 3)
        items.append(CheckItem(f"calibration:{report.camera_id}", not reason, value, "m", detail, reason))
    try:
        calibrate_node(config)
    except ConfigError as exc:
        view = [f"{p}: {m}" for p, m in exc.problems if not p.startswith("cameras[")]
        if view:
            items.append(failed("calibration:view", "; ".join(view)))
    return items


def camera_items(measures: list[CameraMeasure]) -> list[CheckItem]:
    items = []
    for m in measures:
        name = f"camera:{m.camera_id}"
        size = f", {m.resolution_wh[0]}x{m.resolution_wh[1]}" if m.resolution_wh else ""
        detail = f"{m.frames} frames{size}; target {m.target_fps:g} fps, pass at {FPS_PASS_RATIO:.0%}"
        if m.error is not None:
            items.append(CheckItem(name, False, m.fps if m.frames else None, "fps", detail, m.error))
        elif not m.ok:
            reason = f"delivered {m.fps:g} fps, below {FPS_PASS_RATIO * m.target_fps:g} fps"
            items.append(CheckItem(name, False, m.fps, "fps", detail, reason))
        else:
            items.append(CheckItem(name, True, m.fps, "fps", detail))
    return items


def model_items(config: NodeConfig) -> tuple[list[CheckItem], VerifiedModel | None]:
    """The detector's (and re-identification's) model file present with an accepted sha256."""
    wanted = [("model:detector", config.detector.model)]
    if config.tracker.reid is not None:
        wanted.append(("model:reid", config.tracker.reid.model))
    items, detector = [], None
    for name, model_id in wanted:
        try:
            verified = resolve(model_id)
        except ModelError as exc:
            items.append(failed(name, str(exc)))
            continue
        if name == "model:detector":
            detector = verified
        items.append(
            CheckItem(name, True, model_id, "", f"{verified.path}, sha256 {verified.sha256[:16]}...")
        )
    return items, detector


def inference_item(
    config: NodeConfig, model: VerifiedModel | None, measures: list[CameraMeasure]
) -> CheckItem:
    """Time the detector on one frame per camera (a real one where the camera delivered one, else a blank
    frame of its resolution), batched as the node runs it, against 1000 / (sum of the cameras' fps) ms."""
    name = "inference"
    real = [c for c in config.cameras if source_kind(c.source) != "sim"]
    if not real:
        return CheckItem(name, True, 0.0, "ms/frame", "simulated cameras deliver detections: no inference")
    if model is None:
        return failed(name, "no verified detector model to time", unit="ms/frame")
    from vision_models.detector import build_detector  # ONNX Runtime: loaded only when it is timed

    by_id = {m.camera_id: m for m in measures}
    frames: list[npt.NDArray[np.uint8]] = []
    blanks = 0
    for cam in real:
        image = by_id[cam.id].first_image if cam.id in by_id else None
        if image is None:
            w, h = cam.resolution_wh or DEFAULT_FRAME_WH
            image = np.zeros((h, w, 3), dtype=np.uint8)
            blanks += 1
        frames.append(image)
    det = config.detector
    try:
        detector = build_detector(
            model, input_size_wh=det.input_size_wh, score_threshold=det.score_threshold, threads=det.threads
        )
        detector.detect_batch(frames)  # warm-up: the first run allocates
        t0 = time.perf_counter()
        for _ in range(INFERENCE_RUNS):
            detector.detect_batch(frames)
        elapsed = time.perf_counter() - t0
    except ModelError as exc:
        return failed(name, str(exc), unit="ms/frame")
    ms_per_frame = 1000.0 * elapsed / (INFERENCE_RUNS * len(frames))
    total_fps = sum(c.fps for c in real)
    budget_ms = 1000.0 / total_fps
    detail = (
        f"{INFERENCE_RUNS} runs of {len(frames)} frame(s) ({blanks} blank), {det.threads} thread(s); "
        f"budget {budget_ms:.1f} ms/frame for {total_fps:g} frames/s"
    )
    if ms_per_frame > budget_ms:
        reason = f"{ms_per_frame:.1f} ms/frame exceeds the budget of {budget_ms:.1f} ms/frame"
        return CheckItem(name, False, round(ms_per_frame, 1), "ms/frame", detail, reason)
    return CheckItem(name, True, round(ms_per_frame, 1), "ms/frame", detail)


def broker_items(config: NodeConfig, reply_timeout_s: float) -> list[CheckItem]:
    """The broker with the node's account: connect, the refused publish, the round trip, the clock."""
    names = ("broker", "acl:other-store", "round-trip", "clock")
    with BrokerSession(config.broker, store_id=config.store_id, node_id=config.node_id) as session:
        try:
            connected = session.connect()
        except BrokerCheckError as exc:
            skipped = "not checked: the broker did not accept the node's connection"
            return [failed("broker", str(exc))] + [failed(n, skipped) for n in names[1:]]
        items = [CheckItem("broker", True, config.broker.url, "", connected)]
        probe_topic, outcome = session.check_other_store_refused()
        detail = f"QoS 1 publish to {probe_topic}: PUBACK {outcome.reason}"
        if outcome.reason_code == NOT_AUTHORIZED:
            items.append(CheckItem("acl:other-store", True, "refused", "", detail))
        else:
            reason = (
                "the broker took a publish under another store: its ACL must limit the node to "
                f"showroom/v1/{config.store_id}/{config.node_id}/#"
                if outcome.reason_code is not None and not outcome.refused
                else f"expected PUBACK 0x87 Not authorized, got: {outcome.reason}"
            )
            items.append(CheckItem("acl:other-store", False, "accepted", "", detail, reason))
        try:
            trip = session.round_trip(reply_timeout_s)
        except BrokerCheckError as exc:
            items.append(failed("round-trip", str(exc), unit="ms"))
            items.append(
                failed("clock", "not measured: no answer from the aggregator to compare with", unit="s")
            )
            return items
    items.append(
        CheckItem("round-trip", True, round(trip.round_trip_ms, 1), "ms", "commission -> aggregator -> reply")
    )
    items.append(clock_item(trip))
    return items


def clock_item(trip: RoundTrip) -> CheckItem:
    offset = trip.clock_offset_s
    detail = (
        f"against the aggregator's clock (its receipt time of the test message), +/- "
        f"{trip.offset_uncertainty_s:.3f} s; limit {CLOCK_MAX_OFFSET_S:g} s"
    )
    if abs(offset) >= CLOCK_MAX_OFFSET_S:
        side = "behind" if offset > 0 else "ahead of"
        reason = f"the clock is {abs(offset):.2f} s {side} the aggregator's: set up NTP"
        return CheckItem("clock", False, round(offset, 3), "s", detail, reason)
    return CheckItem("clock", True, round(offset, 3), "s", detail)


def disk_item(config: NodeConfig) -> CheckItem:
    """Free space for the outbox's whole budget on the filesystem that holds it."""
    path = resolve_state_path(config, config.outbox.path)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None:
        return failed("disk", f"no existing folder above {path}", unit="MB")
    free_mb = shutil.disk_usage(existing).free / 2**20
    used_mb = path.stat().st_size / 2**20 if path.is_file() else 0.0
    need_mb = max(0.0, config.outbox.max_mb - used_mb)
    detail = f"{path}: budget {config.outbox.max_mb:g} MB, outbox now {used_mb:.1f} MB"
    if free_mb < need_mb:
        reason = f"{free_mb:.0f} MB free, the outbox may still need {need_mb:.0f} MB"
        return CheckItem("disk", False, round(free_mb), "MB", detail, reason)
    return CheckItem("disk", True, round(free_mb), "MB", detail)


# ---------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------


def run_checks(
    config_file: Path, seconds: float, reply_timeout_s: float
) -> tuple[NodeConfig | None, list[CheckItem]]:
    """Every item for the node configured in `config_file` (the config item alone when it is invalid)."""
    try:
        config = load_config(config_file)
    except ConfigError as exc:
        return None, [failed("config", _problems(exc) or str(exc))]
    items = [
        CheckItem("config", True, str(config_file), "", f"store {config.store_id}, node {config.node_id}")
    ]
    items += calibration_items(config)
    resolved = with_resolved_sources(config, config_file)
    measures = measure_cameras(resolved, seconds)
    items += camera_items(measures)
    found, detector_model = model_items(config)
    items += found
    items.append(inference_item(resolved, detector_model, measures))
    items += broker_items(config, reply_timeout_s)
    items.append(disk_item(config))
    return config, items


@click.command("commission")
@click.option("--config", "config_file", required=True, type=click.Path(path_type=Path), help="Node config.")
@click.option("--json", "as_json", is_flag=True, help="Print the items as a JSON list.")
@click.option("--report", type=click.Path(path_type=Path), help="Write an HTML report for the store here.")
@click.option(
    "--seconds",
    type=click.FloatRange(1, 120),
    default=5.0,
    show_default=True,
    help="How long each camera is read to measure its fps.",
)
@click.option(
    "--reply-timeout-s",
    type=click.FloatRange(1, 120),
    default=10.0,
    show_default=True,
    help="How long to wait for the aggregator's answer to the test message.",
)
def commission_command(
    config_file: Path, as_json: bool, report: Path | None, seconds: float, reply_timeout_s: float
) -> None:
    """Check a node end to end (config, calibration, cameras, model, inference speed, broker, aggregator
    round trip, clock, disk) and print each item with its measured value; exit 1 if any fails."""
    started = datetime.now(UTC)
    config, items = run_checks(config_file, seconds, reply_timeout_s)
    if as_json:
        click.echo(json.dumps([i.as_dict() for i in items], indent=2))
    else:
        for line in text_lines(items):
            click.echo(line)
        bad = sum(not i.ok for i in items)
        took = (datetime.now(UTC) - started).total_seconds()
        summary = "commissioning passed" if not bad else f"commissioning FAILED: {bad} of {len(items)} items"
        click.echo(f"{summary} ({len(items)} items, {took:.1f} s)")
    if report is not None:
        page = html_report(
            items,
            store_id=config.store_id if config else "?",
            node_id=config.node_id if config else "?",
            when=started,
            software_version=__version__,
        )
        try:
            report.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write the report {report}: {exc.strerror or exc}") from exc
        click.echo(f"report written to {report}", err=as_json)
    if not all(i.ok for i in items):
        sys.exit(1)
