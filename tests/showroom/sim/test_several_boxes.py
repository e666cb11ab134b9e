"""A simulated store served by two edge boxes, through a real broker and the aggregator's real ingest:
the store's funnel counts each visitor once, however many boxes saw them."""

from __future__ import annotations

import json
import socket
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from aggregator.ingest import Ingestor, Message
from aggregator.queries import Queries
from aggregator.registry import parse_registry
from aggregator.storage import SqliteStorage
from edge.events import VisitEnded, VisitStarted, to_json, topic_for
from edge.sim.scenarios import get_scenario
from showroom.sim.evaluate import default_config, measure
from showroom.sim.several_boxes import box_nodes, run_boxes, run_store_id, split_store
from showroom.sim.truth import compute_truth


def test_two_boxes_one_funnel_through_the_real_ingest(tmp_path: Path, mqtt_broker: tuple[str, int]) -> None:
    host, port = mqtt_broker
    store_id = run_store_id("sim-store")  # topics of its own on the shared broker
    config = default_config().model_copy(update={"store_id": store_id})
    scenario = get_scenario("saturday-peak").with_duration(150)
    nodes = box_nodes(split_store(config, 2), scenario, seed=3)
    end_s = nodes[0].sim.finish()
    truth = compute_truth(nodes[0].sim, config.thresholds)
    run = run_boxes(nodes, end_s, 3, f"mqtt://{host}:{port}")
    events = run.events
    assert {e.node_id for e in events} == {"node-a", "node-b"}
    started_by = {e.visitor_id: e.node_id for e in events if isinstance(e, VisitStarted)}
    ended_by: dict[str, list[str]] = defaultdict(list)
    for e in events:
        if isinstance(e, VisitEnded):
            ended_by[e.visitor_id].append(e.node_id)
    assert all(len(nodes_) == 1 for nodes_ in ended_by.values()), "a visit ended twice"
    crossed = [v for v, n in started_by.items() if ended_by.get(v) and ended_by[v][0] != n]
    assert crossed, "no visit started in one box and ended in the other"
    assert run.handover.taken > 0 and run.handover.lost_at_boundary == 0

    ingestor = Ingestor(SqliteStorage(tmp_path / "agg.sqlite"))
    cars = [{"id": c.id, "model_name": c.model_name, "browse_zone_m": c.browse_zone_m} for c in config.cars]
    ingestor.load_registry(
        parse_registry(
            {
                "brands": [{"id": "aurora", "name": "Aurora Motors"}],
                "stores": [
                    {
                        "store_id": config.store_id,
                        "name": "Simulated store",
                        "brand": "aurora",
                        "region": "east",
                        "timezone": config.timezone,
                        "floor_size_m": list(config.floor.size_m),
                        "cars": cars,
                    }
                ],
            }
        )
    )
    now = datetime.now(UTC)
    ingestor.ingest([Message(topic_for(e), to_json(e), now) for e in events])
    ingestor.ingest([Message(topic_for(e), to_json(e), now) for e in events[::3]])  # redelivered: no change
    day = nodes[0].start_utc.astimezone(config.tz()).date()
    with Queries.open(tmp_path / "agg.sqlite") as q:
        funnel = q.funnel(config.store_id, day)
        hours = q.hourly_traffic(config.store_id, day)
        health = {n.node_id: n.seq_missing for n in q.nodes()}
    measured = measure(events, config.thresholds)
    print(
        f"two boxes, {truth.visitors} visitors (truth): funnel {funnel.visitors} visitors, "
        f"{funnel.car_browsers} browsers, {funnel.car_entrants} entrants, {funnel.receptions} received; "
        f"{len(crossed)} visits crossed boxes; hand-over {run.handover}"
    )
    assert funnel.visitors == measured.visitors == len(started_by)
    assert (funnel.car_browsers, funnel.car_entrants, funnel.receptions) == (
        measured.car_browsers,
        measured.car_entrants,
        measured.reception,
    )
    assert sum(h.visitors for h in hours) == funnel.visitors
    assert health == {"node-a": 0, "node-b": 0}
    assert abs(funnel.visitors - truth.visitors) <= max(1, round(0.05 * truth.visitors))


def test_the_evaluate_command_keeps_its_json_with_several_boxes(mqtt_broker: tuple[str, int]) -> None:
    """`--nodes 1` is today's output exactly; `--nodes 2` the same shape (`metrics.NAME.truth|measured|error`)
    with the hand-over's counts beside it (through a private mosquitto when no broker is reachable)."""
    from click.testing import CliRunner

    from showroom.cli import main

    args = [
        "sim",
        "evaluate",
        "--scenario",
        "saturday-peak",
        "--seed",
        "4",
        "--duration",
        "30",
        "--format",
        "json",
    ]
    plain = CliRunner().invoke(main, args)
    one = CliRunner().invoke(main, [*args, "--nodes", "1"])
    # No broker where it says: the boxes hand over through a private mosquitto instead.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nobody = probe.getsockname()[1]
    two = CliRunner().invoke(main, [*args, "--nodes", "2", "--broker", f"mqtt://127.0.0.1:{nobody}"])
    for result in (plain, one, two):
        assert result.exit_code == 0, result.output
    a, b, c = (json.loads(r.stdout) for r in (plain, one, two))
    for data in (a, b):
        data.pop("wall_s")
    assert a == b
    assert set(c) == set(a) | {"wall_s", "nodes", "handover"} and c["nodes"] == 2
    assert set(c["metrics"]) == set(a["metrics"])
    for name, metric in c["metrics"].items():
        assert {"truth", "measured", "error"} <= set(metric), name
        assert metric["truth"] == a["metrics"][name]["truth"]  # the same simulated people
