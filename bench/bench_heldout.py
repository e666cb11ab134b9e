"""Held-out accuracy on the simulated showroom: seeds never looked at while choosing the defaults.

The product's defaults were chosen on seeds 0-10 of the simulated Saturday peak (BENCHMARKS.md, "tuned-on").
This bench runs `showroom.sim.evaluate.evaluate` on other seeds (default 21-25) and reports, per scenario,
each seed and the combined figure (sum of measured against sum of truth over the seeds) with the spread of the
per-seed errors. Each seed of Saturday peak takes minutes.

    .venv/bin/python bench/bench_heldout.py [--seeds 21-25] [--scenario saturday-peak ...] [--json out.json]

`--seeds` takes numbers and ranges (`21-25 30 32`). Never tune a default on the seeds this bench reports:
once looked at while choosing, a seed is tuned-on.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from showroom.sim.evaluate import default_config, evaluate, relative_error

REPORTED = ("visitors", "car_entrants", "dwell_per_car", "reception")
"""The metrics in the table (the JSON has every metric of `evaluate`)."""
DEFAULT_SEEDS = "21-25"
DEFAULT_SCENARIO = "saturday-peak"


def parse_seeds(items: list[str]) -> list[int]:
    """`["21-25", "30"]` -> `[21, 22, 23, 24, 25, 30]` (in the given order, no repeats)."""
    seeds: list[int] = []
    for item in items:
        first, sep, last = item.partition("-")
        try:
            span = range(int(first), int(last) + 1) if sep else range(int(first), int(first) + 1)
        except ValueError as exc:
            raise SystemExit(f"--seeds: expected N or A-B, got {item!r}") from exc
        if not span:
            raise SystemExit(f"--seeds: empty range {item!r}")
        seeds.extend(s for s in span if s not in seeds)
    return seeds


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.1f}%"


def _num(value: float) -> str:
    return f"{value:,.0f}"


def combine(per_seed: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per metric: summed truth and measured over the seeds, their relative error, and the smallest and
    largest per-seed error (None where a seed's truth was 0 and it measured something)."""
    out: dict[str, dict[str, Any]] = {}
    for name in per_seed[0]["metrics"]:
        truth = sum(float(r["metrics"][name]["truth"]) for r in per_seed)
        measured = sum(float(r["metrics"][name]["measured"]) for r in per_seed)
        errors = [r["metrics"][name]["error"] for r in per_seed if r["metrics"][name]["error"] is not None]
        out[name] = {
            "truth": round(truth, 3),
            "measured": round(measured, 3),
            "error": relative_error(truth, measured),
            "min_error": min(errors) if errors else None,
            "max_error": max(errors) if errors else None,
        }
    return out


def seed_row(label: str, metrics: dict[str, Any]) -> str:
    cells = [
        f"{_num(metrics[m]['measured'])} of {_num(metrics[m]['truth'])} ({_pct(metrics[m]['error'])})"
        for m in REPORTED
    ]
    return f"| {label} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds", nargs="+", default=[DEFAULT_SEEDS], help="Seeds: numbers and A-B ranges (default 21-25)."
    )
    parser.add_argument(
        "--scenario",
        action="append",
        help=f"Scenario of the library (repeatable; default {DEFAULT_SCENARIO}).",
    )
    parser.add_argument(
        "--json", type=Path, help="Also write every seed's metrics and the combined figures here."
    )
    args = parser.parse_args()
    seeds = parse_seeds(args.seeds)
    config = default_config()
    results: dict[str, Any] = {}
    for scenario in args.scenario or [DEFAULT_SCENARIO]:
        print(f"\n{scenario}, held-out seeds {', '.join(map(str, seeds))}: measured of truth (error)")
        print("| seed | " + " | ".join(m.replace("_", " ") for m in REPORTED) + " | wall s |")
        print("|---|" + "---|" * (len(REPORTED) + 1), flush=True)
        per_seed: list[dict[str, Any]] = []
        for seed in seeds:
            began = time.perf_counter()
            result = evaluate(scenario, seed, config).to_json()
            per_seed.append(result)
            print(
                seed_row(str(seed), result["metrics"]) + f" {time.perf_counter() - began:.0f} |", flush=True
            )
        combined = combine(per_seed)
        print(seed_row("**combined**", combined) + " |")
        spread = ", ".join(
            f"{m.replace('_', ' ')} {_pct(combined[m]['min_error'])} to {_pct(combined[m]['max_error'])}"
            for m in REPORTED
        )
        print(f"per-seed error spread: {spread}")
        results[scenario] = {"seeds": seeds, "per_seed": per_seed, "combined": combined}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
