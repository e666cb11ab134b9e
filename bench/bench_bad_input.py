"""Bad input on the simulated showroom: what the node reports, how its counts degrade, what it costs.

Three runs of the real pipeline (`EdgePipeline`, examples/sim-store.yaml without re-identification) on
detections drawn by the simulator with the store's true calibration:

- `detector-blind`: camera 0's detector finds no one from minute 2 to minute 12 while its frames arrive;
- `far-calibration`: Saturday peak (15 min of arrivals) with cam-entrance's floor marks entered 50 m east
  (a consistent but wrong calibration: every person it sees lands 50 m away);
- `launch-crowd`: 1,500 visitors an hour for 10 minutes (80-130 on the floor at once), with the default
  `tracker.max_tracks` and with 64 (a crowd above the tracker's capacity).

Per run: when each camera's `degraded` was first and last reported (simulation seconds), the most tracks
alive against `tracker.max_tracks`, visitors and car entrants measured against the truth, tracker + analytics
CPU ms per step (tracemalloc on: several times the plain figure) and the Python heap traced at the run's
first quarter and at its end (bounded structures keep it flat).

    .venv/bin/python bench/bench_bad_input.py [--fps 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.config import NodeConfig, parse_config  # noqa: E402
from edge.events import EventStamper, IdSource  # noqa: E402
from edge.pipeline import EdgePipeline  # noqa: E402
from edge.sim.scenarios import Scenario, get_scenario  # noqa: E402
from edge.sim.source import SimulatedNode  # noqa: E402
from showroom.sim.evaluate import compare, measure  # noqa: E402
from showroom.sim.truth import compute_truth  # noqa: E402


def store(fps: float) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "examples" / "sim-store.yaml").read_text())
    data.setdefault("tracker", {}).pop("reid", None)
    for cam in data["cameras"]:
        cam["fps"] = fps
    return data


def far(data: dict[str, Any], camera_id: str = "cam-entrance", shift_m: float = 50.0) -> dict[str, Any]:
    wrong: dict[str, Any] = yaml.safe_load(yaml.safe_dump(data))
    cam = next(c for c in wrong["cameras"] if c["id"] == camera_id)
    cam["calibration"]["floor_points_m"] = [[x + shift_m, y] for x, y in cam["calibration"]["floor_points_m"]]
    return wrong


def run(
    name: str, scenario: Scenario, truth_cfg: NodeConfig, node_cfg: NodeConfig, fps: float
) -> dict[str, Any]:
    node = SimulatedNode(truth_cfg, scenario, 1)
    end_s = node.sim.finish()
    truth = compute_truth(node.sim, truth_cfg.thresholds)
    pipeline = EdgePipeline(node_cfg, EventStamper(node_cfg.store_id, node_cfg.node_id, IdSource(1)))
    reported: dict[str, list[float]] = {}
    most_alive = 0
    events = []
    cpu = 0.0
    steps = 0
    tracemalloc.start()
    quarter_mb: float | None = None
    for t_s, detections in node.batches(fps, end_s):
        started = time.thread_time()
        events += pipeline.process(node.start_utc + timedelta(seconds=t_s), detections)
        cpu += time.thread_time() - started
        steps += 1
        most_alive = max(most_alive, pipeline.tracker.tracks_alive)  # type: ignore[attr-defined]
        for cid, view in pipeline.degradation().items():
            for code in view.degraded:
                span = reported.setdefault(f"{cid}: {code}", [t_s, t_s])
                span[1] = t_s
        if quarter_mb is None and t_s >= end_s / 4:
            quarter_mb = tracemalloc.get_traced_memory()[0] / 1e6
    end_mb = tracemalloc.get_traced_memory()[0] / 1e6
    tracemalloc.stop()
    events += pipeline.flush(node.start_utc + timedelta(seconds=end_s))
    metrics = compare(truth, measure(events, node_cfg.thresholds), node_cfg)
    out = {
        "run": name,
        "reported": {k: [round(a, 1), round(b, 1)] for k, (a, b) in sorted(reported.items())},
        "most_tracks_alive": most_alive,
        "max_tracks": node_cfg.tracker.max_tracks,
        "untracked_detections": pipeline.stats.untracked,
        "visitors": [metrics["visitors"]["truth"], metrics["visitors"]["measured"]],
        "car_entrants": [metrics["car_entrants"]["truth"], metrics["car_entrants"]["measured"]],
        "ms_per_step": round(1000 * cpu / steps, 3),
        "heap_mb_quarter_to_end": [round(quarter_mb or 0.0, 1), round(end_mb, 1)],
    }
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fps", type=float, default=2.0, help="Steps per second of simulated time.")
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    data = store(args.fps)
    cfg = parse_config(data)
    small = cfg.model_copy(update={"tracker": cfg.tracker.model_copy(update={"max_tracks": 64})})
    results = [
        run("detector-blind", get_scenario("detector-blind"), cfg, cfg, args.fps),
        run(
            "far-calibration",
            get_scenario("saturday-peak").with_duration(900),
            cfg,
            parse_config(far(data)),
            args.fps,
        ),
        run("launch-crowd", get_scenario("launch-crowd"), cfg, cfg, args.fps),
        run("launch-crowd, max_tracks 64", get_scenario("launch-crowd"), cfg, small, args.fps),
    ]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
