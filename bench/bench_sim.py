"""Accuracy of the edge pipeline on the simulated scenario library (results go in BENCHMARKS.md).

Runs `showroom.sim.evaluate.evaluate` for every scenario of the library with the default camera noise, and
Saturday peak once more with perfect detections (no misses, false positives, jitter or occlusion; people
inside cars still vanish), so detection faults and tracking/analytics faults can be told apart.

    .venv/bin/python bench/bench_sim.py [--seed N] [--scenario NAME ...] [--no-reid] [--json out.json]

`--no-reid` runs the simulated store with its re-identification (`tracker.reid`) turned off.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from edge.sim.scenarios import LIBRARY, NoiseModel, get_scenario
from showroom.sim.evaluate import METRICS, default_config, evaluate


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scenario", action="append", help="Only these scenarios (repeatable).")
    parser.add_argument("--no-perfect", action="store_true", help="Skip the perfect-detections run.")
    parser.add_argument("--no-reid", action="store_true", help="Turn the store's re-identification off.")
    parser.add_argument("--json", help="Also write the raw results here.")
    args = parser.parse_args()
    config = default_config()
    if args.no_reid:
        config = config.model_copy(update={"tracker": config.tracker.model_copy(update={"reid": None})})
    runs = [(name, get_scenario(name)) for name in (args.scenario or LIBRARY)]
    if not args.no_perfect:
        peak = get_scenario("saturday-peak")
        perfect = dataclasses.replace(peak, noise=NoiseModel.perfect())
        runs.append(("saturday-peak (perfect detections)", perfect))
    header = " | ".join(f"{m} truth / measured / error" for m in METRICS)
    print(f"| scenario | {header} | reid boxes/s | wall s |")
    print("|" + "---|" * (len(METRICS) + 3))
    raw = []
    for label, scenario in runs:
        began = time.perf_counter()
        result = evaluate(scenario, args.seed, config)
        cells = []
        for name in METRICS:
            m = result.metrics[name]
            cells.append(f"{m['truth']:g} / {m['measured']:g} / {_pct(m['error'])}")
        boxes = result.link.embedded_boxes / result.simulated_s if result.link else 0.0
        wall = time.perf_counter() - began
        print(f"| {label} | " + " | ".join(cells) + f" | {boxes:.2f} | {wall:.0f} |", flush=True)
        raw.append({"label": label, **result.to_json()})
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
