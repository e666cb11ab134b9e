"""Event streams of the edge path on fixed inputs, as sha256 digests: proof that a refactor kept behaviour.

Runs the real edge path on
- PETS09-S2L1 (`showroom edge track` on the whole clip with examples/pets09.yaml: real detector, events and
  MOT rows), and
- three simulated scenarios (the packaged simulated store, re-identification on, seed 1): Saturday peak,
  groups at the door, staff-heavy,

and prints one sha256 per stream. `--record FILE` writes them; `--check FILE` compares with a recorded file
and exits 1 naming every stream that differs. The PETS09 MOT rows carry the detector's floats, whose last
digits depend on the CPU's instruction set (ONNX Runtime picks its kernels by it): `--record` also keeps those
rows beside FILE (`FILE stem` + `_pets09_mot.txt`), and `--check` compares them row by row within float noise
(`mot_differences`); every other stream must be byte-identical. `--duration S` shortens each scenario's
arrivals window (the test suite checks 360 s windows against tests/data/event_streams_short.json).

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


DETECTOR_STREAMS = ("pets09/mot",)
"""Streams holding the real detector's box coordinates and scores (compared within `MOT_BOX_TOL_PX`)."""
MOT_BOX_TOL_PX = 0.05
MOT_SCORE_TOL = 0.002
MOT_ROWS_MAY_DIFFER = 0.01
"""Share of rows that may differ beyond float noise (a tie broken the other way on another CPU)."""


def mot_reference(record: Path) -> Path:
    """Where the MOT rows recorded with the digests file `record` are kept."""
    return record.with_name(record.stem + "_pets09_mot.txt")


def mot_differences(expected: bytes, found: bytes) -> list[str]:
    """Rows of two MOT files (`frame,id,x,y,w,h,score,...`) that differ beyond float noise: a (frame, id)
    on one side only, a box value off by more than `MOT_BOX_TOL_PX` or a score by more than `MOT_SCORE_TOL`.
    Empty when at most `MOT_ROWS_MAY_DIFFER` of the rows differ; else one line per differing row."""

    def rows(data: bytes) -> dict[tuple[int, int], list[float]]:
        out: dict[tuple[int, int], list[float]] = {}
        for line in data.decode().splitlines():
            f = line.split(",")
            out[(int(f[0]), int(f[1]))] = [float(v) for v in f[2:7]]
        return out

    a, b = rows(expected), rows(found)
    differ = [
        f"frame {k[0]} id {k[1]}: only {'recorded' if k in a else 'now'}" for k in sorted(set(a) ^ set(b))
    ]
    for key in sorted(set(a) & set(b)):
        box_off = max(abs(x - y) for x, y in zip(a[key][:4], b[key][:4], strict=True))
        if box_off > MOT_BOX_TOL_PX or abs(a[key][4] - b[key][4]) > MOT_SCORE_TOL:
            differ.append(f"frame {key[0]} id {key[1]}: {a[key]} recorded, {b[key]} now")
    return differ if len(differ) > MOT_ROWS_MAY_DIFFER * max(len(a), 1) else []


def compare(record: Path, data: dict[str, bytes]) -> list[str]:
    """What differs between the streams `data` and those recorded in `record` (digests, and the MOT rows
    kept beside it when there): one line per stream that changed."""
    recorded = json.loads(record.read_text(encoding="utf-8"))["streams"]
    found = digests(data)
    out = [f"{k}: not recorded" for k in found if k not in recorded]
    out += [f"{k}: not produced" for k in recorded if k not in found]
    reference = mot_reference(record)
    for key in sorted(set(found) & set(recorded)):
        if key in DETECTOR_STREAMS and reference.exists():
            rows = mot_differences(reference.read_bytes(), data[key])
            if rows:
                out.append(f"{key}: {len(rows)} rows differ beyond float noise, first {rows[0]}")
        elif found[key] != recorded[key]:
            kept = " (no MOT rows kept beside it: byte-identical on the recording CPU only)"
            out.append(
                f"{key}: {recorded[key]} recorded, {found[key]} now{kept if key in DETECTOR_STREAMS else ''}"
            )
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
    data = streams(args.duration, args.pets_frames, args.keep, pets=not args.no_pets)
    found = digests(data)
    for key, d in found.items():
        print(f"{key:24} {d['lines']:>7} lines  {d['sha256']}")
    print(f"({time.perf_counter() - began:.0f} s)")
    if args.record is not None:
        payload = {"duration_s": args.duration, "pets_frames": args.pets_frames, "streams": found}
        args.record.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        for key in DETECTOR_STREAMS:
            if key in data:
                mot_reference(args.record).write_bytes(data[key])
    if args.check is not None:
        differ = compare(args.check, data)
        if args.no_pets:
            differ = [d for d in differ if not d.startswith("pets09/")]
        if differ:
            print("CHANGED:\n  " + "\n  ".join(differ), file=sys.stderr)
            sys.exit(1)
        print("identical to " + str(args.check))


if __name__ == "__main__":
    main()
