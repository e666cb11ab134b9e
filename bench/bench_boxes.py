"""Simulated showroom split across several edge boxes: `showroom sim evaluate --nodes K` on several seeds.

Usage: .venv/bin/python bench/bench_boxes.py --seeds 1-3 --nodes 1,2,3 [--duration S] [--json out.json]
Each run is the real CLI (`showroom sim evaluate --format json`); the hand-overs go through the broker
named in the simulated store's config (127.0.0.1:1883) unless --broker is given. Prints one row per run
and the totals per K: measured of truth and error for visitors, car browsers, car entrants, reception.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

METRICS = ("visitors", "car_browsers", "car_entrants", "reception", "dwell_per_car", "heat")


def _range(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(x) for x in text.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="1-3")
    ap.add_argument("--nodes", default="1,2,3")
    ap.add_argument("--duration", type=float)
    ap.add_argument("--broker")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    exe = Path(sys.executable).with_name("showroom")
    runs = []
    for seed in _range(args.seeds):
        for k in _range(args.nodes):
            cmd = [str(exe), "sim", "evaluate", "--scenario", "saturday-peak", "--seed", str(seed)]
            cmd += ["--nodes", str(k), "--format", "json"]
            if args.duration:
                cmd += ["--duration", str(args.duration)]
            if args.broker:
                cmd += ["--broker", args.broker]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            result = json.loads(out.stdout)
            runs.append({"seed": seed, "nodes": k, **result})
            m = result["metrics"]
            row = "  ".join(f"{n} {m[n]['measured']:g}/{m[n]['truth']:g}" for n in METRICS[:4])
            lost = result.get("handover", {}).get("lost_at_boundary", 0)
            print(
                f"seed {seed} K={k}: {row}  lost at boundary {lost}  ({result['wall_s']:.0f} s)", flush=True
            )
    for k in _range(args.nodes):
        mine = [r for r in runs if r["nodes"] == k]
        parts = []
        for n in METRICS:
            t = sum(r["metrics"][n]["truth"] for r in mine)
            v = sum(r["metrics"][n]["measured"] for r in mine)
            parts.append(f"{n} {v:g} of {t:g} ({(v - t) / t * 100:+.1f}%)" if t else f"{n} {v:g} of 0")
        print(f"K={k}, seeds {args.seeds}: " + "; ".join(parts))
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2) + "\n")


if __name__ == "__main__":
    main()
