"""Accuracy of the edge pipeline on the simulated scenario library (results go in BENCHMARKS.md).

Runs `edge.sim.evaluate.evaluate` for every scenario of the library with the default camera noise, and
Saturday peak once more with perfect detections (no misses, false positives, jitter or occlusion; people
inside cars still vanish), so detection faults and tracking/analytics faults can be told apart.

    .venv/bin/python bench/bench_sim.py [--seed N] [--scenario NAME ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from edge.sim.evaluate import METRICS, evaluate
from edge.sim.scenarios import LIBRARY, NoiseModel, get_scenario


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scenario", action="append", help="Only these scenarios (repeatable).")
    parser.add_argument("--no-perfect", action="store_true", help="Skip the perfect-detections run.")
    parser.add_argument("--json", help="Also write the raw results here.")
    args = parser.parse_args()
    runs = [(name, get_scenario(name)) for name in (args.scenario or LIBRARY)]
    if not args.no_perfect:
        peak = get_scenario("saturday-peak")
        perfect = dataclasses.replace(peak, noise=NoiseModel.perfect())
        runs.append(("saturday-peak (perfect detections)", perfect))
    header = "| scenario | " + " | ".join(f"{m} truth / measured / error" for m in METRICS) + " | wall s |"
    print(header)
    print("|" + "---|" * (len(METRICS) + 2))
    raw = []
    for label, scenario in runs:
        began = time.perf_counter()
        result = evaluate(scenario, args.seed)
        cells = []
        for name in METRICS:
            m = result.metrics[name]
            cells.append(f"{m['truth']:g} / {m['measured']:g} / {_pct(m['error'])}")
        print(f"| {label} | " + " | ".join(cells) + f" | {time.perf_counter() - began:.0f} |", flush=True)
        raw.append({"label": label, **result.to_json()})
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
