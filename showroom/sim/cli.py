"""`showroom sim`: list scenarios, simulate one (truth and detections to files), evaluate the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from edge.config import ConfigError, NodeConfig, load_config
from edge.events import EventStamper, IdSource, to_json
from edge.node.handover_transport import HandoverLinkError
from edge.sim.scenarios import LIBRARY, SCENARIOS, UnknownScenarioError, get_scenario
from edge.sim.source import SimulatedNode
from showroom.sim.evaluate import default_config, evaluate, format_text
from showroom.sim.several_boxes import HandoverDeliveryError
from showroom.sim.truth import compute_truth


def _config(path: Path | None) -> NodeConfig:
    if path is None:
        return default_config()
    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _scenario_option(f: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--scenario",
        "scenario_name",
        default="saturday-peak",
        show_default=True,
        help=f"One of: {', '.join(SCENARIOS)}.",
    )(f)


@click.group("sim")
def sim() -> None:
    """The simulated showroom: scenarios with exact ground truth, and the pipeline's accuracy on them."""


@sim.command("scenarios")
def scenarios() -> None:
    """List the scenario library."""
    for name, sc in SCENARIOS.items():
        click.echo(f"{name:<16}{sc.description}")


@sim.command("run")
@_scenario_option
@click.option("--seed", default=0, show_default=True, help="Fixes people and camera faults.")
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="Node config (default: sim store)."
)
@click.option("--duration", type=float, help="Arrivals window in seconds (default: the scenario's).")
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path), default=Path("var/sim-out"), show_default=True
)
@click.option("--detections/--no-detections", default=True, show_default=True, help="Also write detections.")
def run(
    scenario_name: str,
    seed: int,
    config_file: Path | None,
    duration: float | None,
    out_dir: Path,
    detections: bool,
) -> None:
    """Simulate a scenario and write its ground truth, trajectories and per-camera detections.

    Files in OUT: truth.json (counts), truth-events.jsonl (the contract events a perfect node sends),
    trajectories.csv (t_s,person,role,x_m,y_m,seated at 1 s), det-CAMERA.txt (MOTChallenge detection rows
    `frame,-1,x,y,w,h,score,-1,-1,-1`, frame 1 = t 0, at the camera's fps).
    """
    try:
        scenario = get_scenario(scenario_name)
    except UnknownScenarioError as exc:
        raise click.BadParameter(str(exc), param_hint="--scenario") from None
    if scenario.endless and duration is None:
        raise click.BadParameter(
            f"scenario {scenario_name!r} is endless; give --duration", param_hint="--duration"
        )
    if duration is not None:
        scenario = scenario.with_duration(duration)
    cfg = _config(config_file)
    node = SimulatedNode(cfg, scenario, seed)
    end_s = node.sim.finish()
    truth = compute_truth(node.sim, cfg.thresholds)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamper = EventStamper(cfg.store_id, cfg.node_id, IdSource(seed))
    with (out_dir / "truth-events.jsonl").open("wb") as fh:
        for event in truth.events(stamper):
            fh.write(to_json(event) + b"\n")
    summary = {
        "scenario": scenario.name,
        "seed": seed,
        "start_utc": node.start_utc.isoformat(),
        "end_s": round(end_s, 1),
        "visitors": truth.visitors,
        "car_browsers": truth.car_browsers,
        "car_entrants": truth.car_entrants,
        "reception": truth.received,
        "heat_person_s": round(truth.heat_person_s, 1),
        "per_car": {k: vars(v) for k, v in truth.per_car().items()},
    }
    (out_dir / "truth.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    samples = node.sim.samples(0.0, int(end_s) + 1, 1.0)
    people = node.sim.people()
    with (out_dir / "trajectories.csv").open("w", encoding="utf-8") as fh:
        fh.write("t_s,person,role,x_m,y_m,seated\n")
        for k, pid, (x, y), seated in zip(
            samples.frame, samples.pid, samples.xy_m, samples.seated, strict=True
        ):
            fh.write(f"{k},{pid},{people[int(pid)].role},{x:.3f},{y:.3f},{int(seated)}\n")
    if detections:
        _write_detections(node, end_s, out_dir)
    click.echo(
        f"{scenario.name} seed {seed}: {truth.visitors} visitors, {truth.car_browsers} car browsers, "
        f"{truth.car_entrants} car entrants, {truth.received} received, {end_s / 60:.1f} min -> {out_dir}"
    )


def _write_detections(node: SimulatedNode, end_s: float, out_dir: Path) -> None:
    fps = max(cam.fps for cam in node.config.cameras)
    files = {cam_id: (out_dir / f"det-{cam_id}.txt").open("w", encoding="utf-8") for cam_id in node.cameras}
    try:
        for frame, (_, by_camera) in enumerate(node.batches(fps, end_s), start=1):
            for cam_id, dets in by_camera.items():
                xywh = np.column_stack([dets.xyxy[:, :2], dets.xyxy[:, 2:] - dets.xyxy[:, :2]])
                for (x, y, w, h), score in zip(xywh, dets.confidence, strict=True):
                    files[cam_id].write(f"{frame},-1,{x:.1f},{y:.1f},{w:.1f},{h:.1f},{score:.3f},-1,-1,-1\n")
    finally:
        for fh in files.values():
            fh.close()


@sim.command("evaluate")
@_scenario_option
@click.option("--seed", default=0, show_default=True, help="Fixes people and camera faults.")
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="Node config (default: sim store)."
)
@click.option("--duration", type=float, help="Arrivals window in seconds (default: the scenario's).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--all", "run_all", is_flag=True, help="Every scenario of the library (ignores --scenario).")
@click.option(
    "--nodes",
    type=click.IntRange(1, 8),
    default=1,
    show_default=True,
    help="Split the store across this many edge boxes, handing visitors over through the broker.",
)
@click.option("--broker", "broker_url", help="Broker for the hand-overs (default: the config's broker.url).")
def evaluate_cmd(
    scenario_name: str,
    seed: int,
    config_file: Path | None,
    duration: float | None,
    fmt: str,
    run_all: bool,
    nodes: int,
    broker_url: str | None,
) -> None:
    """Run a scenario's detections through the edge pipeline; print truth, measured and error per metric."""
    names = list(LIBRARY) if run_all else [scenario_name]
    for name in names:
        if name not in SCENARIOS:
            raise click.BadParameter(str(UnknownScenarioError(name)), param_hint="--scenario")
        if SCENARIOS[name].endless and duration is None:
            raise click.BadParameter(
                f"scenario {name!r} is endless; give --duration", param_hint="--duration"
            )
    cfg = _config(config_file)
    results = []
    for name in names:
        try:
            result = evaluate(name, seed, cfg, duration_s=duration, nodes=nodes, broker_url=broker_url)
        except (HandoverLinkError, HandoverDeliveryError) as exc:
            raise click.ClickException(f"{nodes} boxes need a broker between them: {exc}") from exc
        results.append(result)
        if fmt == "text":
            click.echo(format_text(result))
    if fmt == "json":
        payload = [r.to_json() for r in results]
        click.echo(json.dumps(payload[0] if not run_all else {"scenarios": payload}, indent=2))


__all__ = ["sim"]
