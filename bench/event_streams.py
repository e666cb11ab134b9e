"""Event streams of the edge path on fixed inputs, as sha256 digests: proof that a refactor kept behaviour.

Runs the real edge path on
- PETS09-S2L1 (`showroom edge track` on the whole clip with examples/pets09.yaml: real detector, events and
  MOT rows), and
- three simulated scenarios (the packaged simulated store, re-identification on, seed 1): Saturday peak,
  groups at the door, staff-heavy,

and prints one sha256 per stream. `--record FILE` writes them; `--check FILE` compares with a recorded file
and exits 1 naming every stream that differs. `--duration S` shortens each scenario's arrivals window (the
test suite checks 240 s windows against tests/data/event_streams_short.json).

    .venv/bin/python bench/event_streams.py --check bench/event_streams_full.json
    .venv/bin/python bench/event_streams.py --record /tmp/now.json --keep /tmp/streams   # streams kept
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
PETS_VIDEO = REPO.parent / "shared" / "data" / "pets09_s2l1" / "vtest_480x360.avi"
SCENARIOS = ("saturday-peak", "groups-at-door", "staff-heavy")
SEED = 1


def pets_streams(out_dir: Path, max_frames: int | None = None) -> dict[str, bytes]:
    """The events and MOT rows of `showroom edge track` on the PETS09-S2L1 clip."""
    from showroom.cli import main as cli_main

    events, mot = out_dir / "pets09-events.jsonl", out_dir / "pets09-mot.txt"
    args = ["edge", "track", str(PETS_VIDEO), "--config", str(REPO / "examples" / "pets09.yaml")]
    args += ["--events-out", str(events), "--mot-out", str(mot), "--no-progress"]
    if max_frames is not None:
        args += ["--max-frames", str(max_frames)]
    result = CliRunner().invoke(cli_main, args, catch_exceptions=False)
    if result.exit_code != 0:
        raise RuntimeError(f"showroom edge track failed ({result.exit_code}): {result.output}")
    return {"pets09/events": events.read_bytes(), "pets09/mot": mot.read_bytes()}


def scenario_stream(name: str, duration_s: float | None) -> bytes:
    """Every event the pipeline delivers on scenario `name` (seed 1), one contract JSON line each."""
    from edge.events import to_json
    from edge.sim.scenarios import get_scenario
    from edge.sim.source import SimulatedNode
    from showroom.sim.evaluate import default_config, run_pipeline

    scenario = get_scenario(name)
    if duration_s is not None:
        scenario = scenario.with_duration(duration_s)
    node = SimulatedNode(default_config(), scenario, SEED)
    events, _ = run_pipeline(node, node.sim.finish(), SEED)
    return b"".join(to_json(e) + b"\n" for e in events)


def streams(
    duration_s: float | None, pets_frames: int | None, keep: Path | None = None, pets: bool = True
) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if pets:
            out.update(pets_streams(Path(tmp), pets_frames))
    for name in SCENARIOS:
        out[f"sim/{name}"] = scenario_stream(name, duration_s)
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        for key, data in out.items():
            (keep / (key.replace("/", "-") + ".txt")).write_bytes(data)
    return out


def digests(data: dict[str, bytes]) -> dict[str, dict[str, object]]:
    return {
        k: {"sha256": hashlib.sha256(v).hexdigest(), "lines": v.count(b"\n")} for k, v in sorted(data.items())
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=Path, help="Write the digests here.")
    parser.add_argument("--check", type=Path, help="Compare with digests recorded here (exit 1 on a change).")
    parser.add_argument("--duration", type=float, help="Shorten each scenario's arrivals window (s).")
    parser.add_argument("--pets-frames", type=int, help="Only the first N frames of the PETS09 clip.")
    parser.add_argument("--no-pets", action="store_true", help="Skip PETS09 (no detector run).")
    parser.add_argument("--keep", type=Path, help="Also write every stream into this folder.")
    args = parser.parse_args()
    os.environ.setdefault("SHOWROOM_MODEL_DIR", str(REPO.parent / "shared" / "models"))
    began = time.perf_counter()
    if args.check is not None:
        recorded = json.loads(args.check.read_text(encoding="utf-8"))
        args.duration = recorded.get("duration_s")
        args.pets_frames = recorded.get("pets_frames")
    found = digests(streams(args.duration, args.pets_frames, args.keep, pets=not args.no_pets))
    for key, d in found.items():
        print(f"{key:24} {d['lines']:>7} lines  {d['sha256']}")
    print(f"({time.perf_counter() - began:.0f} s)")
    if args.record is not None:
        payload = {"duration_s": args.duration, "pets_frames": args.pets_frames, "streams": found}
        args.record.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if args.check is not None:
        differ = [k for k, d in found.items() if recorded["streams"].get(k) != d]
        differ += [k for k in recorded["streams"] if k not in found and not args.no_pets]
        if differ:
            print("CHANGED: " + ", ".join(differ), file=sys.stderr)
            sys.exit(1)
        print("identical to " + str(args.check))


if __name__ == "__main__":
    main()
