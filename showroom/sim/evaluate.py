"""Accuracy of the edge pipeline on a simulated scenario: measured counts versus the ground truth.

`evaluate(...)` simulates a scenario, feeds every camera's detections frame by frame through the node's
real pipeline (`edge.pipeline.EdgePipeline`: projection, tracking, analytics), and compares the events it
emits with the truth computed from the true trajectories. `measure(events)` reads the DOMAIN.md counts off
any stream of contract events, so it applies equally to the pipeline's output and to the truth's own
events (which must reproduce the truth exactly).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from edge.config import NodeConfig, Thresholds, load_config
from edge.events import (
    CarEntry,
    Envelope,
    EventStamper,
    Heat,
    IdSource,
    Reception,
    VisitEnded,
    VisitStarted,
    ZoneDwell,
    parse_event,
)
from edge.node.outbox import Outbox
from edge.pipeline import EdgePipeline
from edge.sim.scenarios import Scenario, get_scenario
from edge.sim.source import SimulatedNode
from edge.sim.world import Vec
from showroom.sim.several_boxes import (
    BoxesRun,
    box_nodes,
    private_broker,
    reachable,
    run_boxes,
    run_store_id,
    split_store,
)
from showroom.sim.truth import GroundTruth, compute_truth

log = logging.getLogger(__name__)

METRICS = ("visitors", "car_browsers", "car_entrants", "dwell_per_car", "reception", "heat")
_COARSE_CELL_M = 1.0


@dataclass
class Measured:
    """DOMAIN.md counts read off a stream of contract events."""

    visitors: int = 0
    car_browsers: int = 0
    car_entrants: int = 0
    reception: int = 0
    dwell_s_by_car: dict[str, float] = field(default_factory=dict)
    heat_cells: dict[tuple[int, int], float] = field(default_factory=dict)
    """Person-seconds per `cell_m` cell over the whole period."""
    cell_m: float = 0.25

    @property
    def heat_person_s(self) -> float:
        return float(sum(self.heat_cells.values()))


def measure(events: Iterable[Envelope], thresholds: Thresholds) -> Measured:
    """The counts a dashboard would show for these events (browse dwells under `browse_min_s` ignored)."""
    started: set[str] = set()
    browsers: set[str] = set()
    entrants: set[str] = set()
    received: set[str] = set()
    out = Measured(cell_m=thresholds.heat_cell_m)
    for event in events:
        if isinstance(event, VisitStarted):
            started.add(event.visitor_id)
        elif isinstance(event, ZoneDwell) and event.dwell_s >= thresholds.browse_min_s - 1e-6:
            browsers.add(event.visitor_id)
            out.dwell_s_by_car[event.zone_id] = out.dwell_s_by_car.get(event.zone_id, 0.0) + event.dwell_s
        elif isinstance(event, CarEntry):
            entrants.add(event.visitor_id)
        elif isinstance(event, Reception):
            received.add(event.visitor_id)
        elif isinstance(event, VisitEnded):
            if event.browsed:
                browsers.add(event.visitor_id)
            if event.entered_car:
                entrants.add(event.visitor_id)
            if event.received:
                received.add(event.visitor_id)
        elif isinstance(event, Heat):
            out.cell_m = event.cell_m
            for ix, iy, value in event.cells:
                out.heat_cells[(ix, iy)] = out.heat_cells.get((ix, iy), 0.0) + value
    # Only visits that started count: a node restarted mid-visit may report the end of an unknown one.
    out.visitors = len(started)
    out.car_browsers = len(browsers & started)
    out.car_entrants = len(entrants & started)
    out.reception = len(received & started)
    return out


def relative_error(truth: float, measured: float) -> float | None:
    """(measured - truth) / truth; 0 when both are 0, None when only the truth is 0."""
    if truth == 0:
        return 0.0 if measured == 0 else None
    return (measured - truth) / truth


def _metric(truth: float, measured: float) -> dict[str, Any]:
    err = relative_error(truth, measured)
    return {
        "truth": round(truth, 3),
        "measured": round(measured, 3),
        "error": None if err is None else round(err, 4),
    }


def _coarse(cells: dict[tuple[int, int], float], cell_m: float, shape: tuple[int, int]) -> Vec:
    grid = np.zeros(shape)
    factor = _COARSE_CELL_M / cell_m
    for (ix, iy), value in cells.items():
        cx, cy = int(ix / factor), int(iy / factor)
        if 0 <= cy < shape[0] and 0 <= cx < shape[1]:
            grid[cy, cx] += value
    return grid


def compare(truth: GroundTruth, measured: Measured, config: NodeConfig) -> dict[str, Any]:
    """The report: per metric truth, measured and relative error (JSON-ready)."""
    per_car = truth.per_car()
    cars = {
        car: _metric(per_car[car].dwell_total_s, measured.dwell_s_by_car.get(car, 0.0))
        for car in truth.car_ids
    }
    total_truth = sum(c.dwell_total_s for c in per_car.values())
    dwell = _metric(total_truth, sum(measured.dwell_s_by_car.get(car, 0.0) for car in truth.car_ids))
    dwell["cars"] = cars
    truth_cells: dict[tuple[int, int], float] = {}
    for (_, ix, iy), value in truth.heat_s.items():
        truth_cells[(ix, iy)] = truth_cells.get((ix, iy), 0.0) + value
    w, h = config.floor.size_m
    shape = (int(np.ceil(h / _COARSE_CELL_M)), int(np.ceil(w / _COARSE_CELL_M)))
    a = _coarse(truth_cells, truth.cell_m, shape)
    b = _coarse(measured.heat_cells, measured.cell_m, shape)
    heat = _metric(truth.heat_person_s, measured.heat_person_s)
    if a.sum() > 0 and b.sum() > 0:
        # Half the L1 distance between the normalised 1 m grids: 0 identical, 1 disjoint.
        heat["distribution_error"] = round(float(np.abs(a / a.sum() - b / b.sum()).sum() / 2), 4)
    return {
        "visitors": _metric(truth.visitors, measured.visitors),
        "car_browsers": _metric(truth.car_browsers, measured.car_browsers),
        "car_entrants": _metric(truth.car_entrants, measured.car_entrants),
        "dwell_per_car": dwell,
        "reception": _metric(truth.received, measured.reception),
        "heat": heat,
    }


@dataclass
class LinkStats:
    """What the node's outbox did on the way to the (simulated) broker, and how many boxes its
    re-identification model was asked to embed (its CPU cost is per box)."""

    produced: int = 0
    delivered: int = 0
    max_outbox_depth: int = 0
    evicted: int = 0
    embedded_boxes: int = 0


def run_pipeline(
    node: SimulatedNode, end_s: float, seed: int, workdir: Path | None = None
) -> tuple[list[Envelope], LinkStats]:
    """Every event the real pipeline emits on the node's simulated detections from 0 to `end_s`, as
    delivered through the node's real outbox to a broker that is down during the scenario's broker outages
    (what the broker never acknowledged stays in the outbox and goes out once it is back)."""
    config = node.config
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        outbox = Outbox(Path(tmp) / "outbox.sqlite", int(config.outbox.max_mb * 1024 * 1024))
        stamper = EventStamper(config.store_id, config.node_id, IdSource(seed), next_seq=outbox.next_seq)
        pipeline = EdgePipeline(config, stamper)
        fps = max(cam.fps for cam in config.cameras)
        stats = LinkStats()
        delivered: list[Envelope] = []
        start = node.start_utc

        def send(t_s: float, produced: list[Envelope]) -> None:
            outbox.extend(produced)
            stats.produced += len(produced)
            stats.max_outbox_depth = max(stats.max_outbox_depth, outbox.depth())
            if any(o.covers(t_s) for o in node.scenario.broker_outages):
                return
            while rows := outbox.pending(limit=500):
                for row in rows:
                    delivered.append(parse_event(row.payload))
                    outbox.ack(row.seq)

        for t_s, detections in node.batches(fps, end_s):
            send(t_s, pipeline.process(start + timedelta(seconds=t_s), detections))
        send(end_s, pipeline.flush(start + timedelta(seconds=end_s), "shutdown"))
        stats.delivered = len(delivered)
        stats.embedded_boxes = pipeline.stats.embedded_boxes
        stats.evicted = outbox.stats().evicted_total
        outbox.close()
    return delivered, stats


@dataclass
class Evaluation:
    scenario: Scenario
    seed: int
    config: NodeConfig
    truth: GroundTruth
    measured: Measured
    metrics: dict[str, Any]
    simulated_s: float
    wall_s: float
    link: LinkStats | None = None
    boxes: BoxesRun | None = None
    """A store served by several boxes: what their hand-over did (None: one box)."""

    def to_json(self) -> dict[str, Any]:
        out = {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "store_id": self.config.store_id,
            "simulated_s": round(self.simulated_s, 1),
            "wall_s": round(self.wall_s, 2),
            "metrics": self.metrics,
            "outbox": None if self.link is None else vars(self.link),
        }
        if self.boxes is not None:
            out["nodes"] = len(self.boxes.per_node)
            out["handover"] = {
                **self.boxes.handover.as_dict(),
                "messages": self.boxes.messages,
                "per_node": self.boxes.per_node,
            }
        return out


def default_config() -> NodeConfig:
    """The packaged simulated store (the same as examples/sim-store.yaml)."""
    from importlib.resources import as_file, files

    with as_file(files("showroom.sim").joinpath("sim-store.yaml")) as path:
        return load_config(path)


def evaluate(
    scenario: str | Scenario,
    seed: int,
    config: NodeConfig | None = None,
    *,
    duration_s: float | None = None,
    events: list[Envelope] | None = None,
    nodes: int = 1,
    broker_url: str | None = None,
) -> Evaluation:
    """Run `scenario` with `seed` through the pipeline (or score the given `events`) against the truth.

    Args:
        scenario: a name from the library or a `Scenario`.
        seed: fixes people and camera faults.
        config: the node (default: the packaged simulated store).
        duration_s: shorten the arrivals window (the run still lasts until everyone has left).
        events: score these events instead of running the pipeline (e.g. the truth's own events).
        nodes: split the store across this many edge boxes (`showroom.sim.several_boxes`), handing
            visitors over through the broker at `broker_url` (default: the config's).
    """
    began = time.perf_counter()
    sc = get_scenario(scenario) if isinstance(scenario, str) else scenario
    if duration_s is not None:
        sc = sc.with_duration(duration_s)
    cfg = config or default_config()
    if nodes > 1:
        return _evaluate_boxes(sc, seed, cfg, nodes, broker_url or cfg.broker.url, began)
    node = SimulatedNode(cfg, sc, seed)
    end_s = node.sim.finish()
    truth = compute_truth(node.sim, cfg.thresholds)
    link = LinkStats(len(events), len(events)) if events is not None else None
    if events is None:
        events, link = run_pipeline(node, end_s, seed)
    measured = measure(events, cfg.thresholds)
    metrics = compare(truth, measured, cfg)
    return Evaluation(sc, seed, cfg, truth, measured, metrics, end_s, time.perf_counter() - began, link)


def _evaluate_boxes(
    scenario: Scenario, seed: int, config: NodeConfig, boxes: int, broker_url: str, began: float
) -> Evaluation:
    """The store split across `boxes` edge boxes, each with its own cameras, handing over through the
    broker; scored as one store."""
    nodes = box_nodes(split_store(config, boxes, store_id=run_store_id(config.store_id)), scenario, seed)
    end_s = nodes[0].sim.finish()
    truth = compute_truth(nodes[0].sim, config.thresholds)
    if reachable(broker_url):
        run = run_boxes(nodes, end_s, seed, broker_url)
    else:
        log.warning("no broker at %s: the boxes hand over through a private mosquitto", broker_url)
        with private_broker() as url:
            run = run_boxes(nodes, end_s, seed, url)
    measured = measure(run.events, config.thresholds)
    metrics = compare(truth, measured, config)
    link = LinkStats(len(run.events), len(run.events))
    wall_s = time.perf_counter() - began
    return Evaluation(scenario, seed, config, truth, measured, metrics, end_s, wall_s, link, run)


def format_text(evaluation: Evaluation) -> str:
    """A table for people: metric, truth, measured, error."""
    lines = [
        f"scenario {evaluation.scenario.name}, seed {evaluation.seed}, store {evaluation.config.store_id}: "
        f"{evaluation.simulated_s / 60:.1f} simulated minutes in {evaluation.wall_s:.1f} s",
        f"{'metric':<16}{'truth':>12}{'measured':>12}{'error':>10}",
    ]
    for name in METRICS:
        m = evaluation.metrics[name]
        err = "n/a" if m["error"] is None else f"{m['error'] * 100:+.1f}%"
        lines.append(f"{name:<16}{m['truth']:>12.1f}{m['measured']:>12.1f}{err:>10}")
    if evaluation.link is not None and evaluation.scenario.broker_outages:
        link = evaluation.link
        lines.append(
            f"broker outage: {link.produced} payloads produced, {link.delivered} delivered, "
            f"outbox peaked at {link.max_outbox_depth}, {link.evicted} evicted"
        )
    if evaluation.link is not None and evaluation.link.embedded_boxes:
        boxes = evaluation.link.embedded_boxes
        lines.append(
            f"re-identification: {boxes} boxes embedded, {boxes / max(evaluation.simulated_s, 1e-9):.2f} "
            "per second of the scenario"
        )
    if evaluation.boxes is not None:
        counts = evaluation.boxes.handover
        lines.append(
            f"{len(evaluation.boxes.per_node)} boxes: {counts.offered} visits offered at a boundary, "
            f"{counts.taken} taken, {counts.withdrawn} turned back, {counts.lost_at_boundary} lost at the "
            f"boundary; {evaluation.boxes.messages} hand-over messages through the broker"
        )
    if "distribution_error" in evaluation.metrics["heat"]:
        lines.append(
            f"heat distribution error (1 m cells): {evaluation.metrics['heat']['distribution_error']:.3f}"
        )
    return "\n".join(lines)


__all__ = [
    "METRICS",
    "Evaluation",
    "Measured",
    "compare",
    "default_config",
    "evaluate",
    "format_text",
    "measure",
    "relative_error",
    "run_pipeline",
]
