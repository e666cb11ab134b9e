"""`showroom sim evaluate`: the harness scores the truth's own events as exact, and the real pipeline's
output against the truth, with the JSON shape the issue asks for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.config import load_config
from edge.events import EventStamper, IdSource, parse_event, to_json
from edge.sim.scenarios import get_scenario
from edge.sim.simulation import Simulation
from showroom.cli import main
from showroom.sim.evaluate import METRICS, compare, default_config, measure
from showroom.sim.truth import compute_truth

ROOT = Path(__file__).parents[3]
CONFIG = load_config(ROOT / "examples" / "sim-store.yaml")


def test_packaged_store_is_the_example_store() -> None:
    assert (ROOT / "showroom" / "sim" / "sim-store.yaml").read_text() == (
        ROOT / "examples" / "sim-store.yaml"
    ).read_text()
    assert default_config() == CONFIG


def test_truth_events_are_valid_contract_events_that_score_zero_error() -> None:
    sim = Simulation(CONFIG, get_scenario("staff-heavy").with_duration(900), seed=3)
    sim.finish()
    truth = compute_truth(sim)
    events = truth.events(EventStamper(CONFIG.store_id, CONFIG.node_id, IdSource(3)))
    assert all(parse_event(to_json(e)) == e for e in events)
    assert truth.visitors > 5 and truth.car_browsers > 0 and truth.received > 0
    report = compare(truth, measure(events, CONFIG.thresholds), CONFIG)
    assert set(report) == set(METRICS)
    for name in METRICS:
        assert report[name]["error"] == pytest.approx(0.0, abs=1e-3), name


def test_measure_catches_a_missing_visit() -> None:
    sim = Simulation(CONFIG, get_scenario("quiet-weekday").with_duration(1800), seed=2)
    sim.finish()
    truth = compute_truth(sim)
    events = truth.events(EventStamper(CONFIG.store_id, CONFIG.node_id, IdSource(2)))
    first = next(e for e in events if e.type == "visit.started")  # type: ignore[attr-defined]
    dropped = [e for e in events if getattr(e, "visitor_id", None) != first.visitor_id]  # type: ignore[attr-defined]
    report = compare(truth, measure(dropped, CONFIG.thresholds), CONFIG)
    assert report["visitors"]["measured"] == truth.visitors - 1
    assert report["visitors"]["error"] == pytest.approx(-1 / truth.visitors, abs=1e-4)


@pytest.fixture(scope="module")
def saturday_peak_json() -> dict:  # type: ignore[type-arg]
    """5 min of Saturday-peak arrivals (run until all have left) through the real pipeline, via the CLI."""
    pytest.importorskip("edge.pipeline")
    argv = [
        "sim",
        "evaluate",
        "--scenario",
        "saturday-peak",
        "--seed",
        "1",
        "--duration",
        "300",
        "--format",
        "json",
    ]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    print({k: (v["truth"], v["measured"], v["error"]) for k, v in payload["metrics"].items()})
    return payload  # type: ignore[no-any-return]


def test_evaluate_cli_prints_truth_measured_and_error_per_metric(saturday_peak_json: dict) -> None:  # type: ignore[type-arg]
    assert saturday_peak_json["scenario"] == "saturday-peak" and saturday_peak_json["seed"] == 1
    assert set(saturday_peak_json["metrics"]) == set(METRICS)
    for metric in saturday_peak_json["metrics"].values():
        assert set(metric) >= {"truth", "measured", "error"}
    assert set(saturday_peak_json["metrics"]["dwell_per_car"]["cars"]) == {c.id for c in CONFIG.cars}
    assert saturday_peak_json["outbox"]["delivered"] == saturday_peak_json["outbox"]["produced"]
    # The simulated store runs re-identification: the tracker asked for embeddings, within its budget.
    reid = CONFIG.tracker.reid
    assert reid is not None
    steps = saturday_peak_json["simulated_s"] * max(c.fps for c in CONFIG.cameras)
    assert 0 < saturday_peak_json["outbox"]["embedded_boxes"] <= reid.max_per_step * steps


def test_pipeline_counts_stay_close_to_the_truth(saturday_peak_json: dict) -> None:  # type: ignore[type-arg]
    """A regression bound that a broken tracker or door counter fails at once. The issue's targets (visitors
    within 2%, car entrants within 5%) need a full hour to be meaningful: bench/bench_sim.py measures them."""
    m = saturday_peak_json["metrics"]
    assert m["visitors"]["truth"] >= 10
    assert abs(m["visitors"]["error"]) <= 0.20
    assert abs(m["car_browsers"]["error"]) <= 0.25


def test_evaluate_rejects_unknown_scenarios() -> None:
    result = CliRunner().invoke(main, ["sim", "evaluate", "--scenario", "nope"])
    assert result.exit_code != 0 and "unknown scenario" in result.output


def test_sim_run_writes_truth_trajectories_and_detections(tmp_path: Path) -> None:
    argv = [
        "sim",
        "run",
        "--scenario",
        "groups-at-door",
        "--seed",
        "3",
        "--duration",
        "300",
        "--out",
        str(tmp_path),
    ]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    truth = json.loads((tmp_path / "truth.json").read_text())
    events = [parse_event(line) for line in (tmp_path / "truth-events.jsonl").read_bytes().splitlines()]
    assert truth["visitors"] == sum(e.type == "visit.started" for e in events) > 0  # type: ignore[attr-defined]
    header, *rows = (tmp_path / "trajectories.csv").read_text().splitlines()
    assert header == "t_s,person,role,x_m,y_m,seated" and {r.split(",")[2] for r in rows} == {
        "visitor",
        "staff",
    }
    for cam in CONFIG.cameras:
        lines = (tmp_path / f"det-{cam.id}.txt").read_text().splitlines()
        assert lines and all(len(line.split(",")) == 10 for line in lines)
