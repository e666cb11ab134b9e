"""Behaviour guard: the edge path's event streams on fixed inputs are byte-identical to the recorded ones.

PETS09-S2L1 (first 300 frames, real detector) and three simulated scenarios (360 s arrivals windows, seed 1)
run through `bench/event_streams.py`; their sha256 digests must equal tests/data/event_streams_short.json.
A change that alters what the node counts must re-record that file on purpose (and say so in its commit):
    .venv/bin/python bench/event_streams.py --duration 360 --pets-frames 300 \
        --record tests/data/event_streams_short.json
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECORDED = REPO / "tests" / "data" / "event_streams_short.json"


def _bench_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("event_streams", REPO / "bench" / "event_streams.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_event_streams_are_identical_to_the_recorded_ones(pets_dir: Path, model_dir: Path) -> None:
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))
    bench = _bench_module()
    found = bench.digests(bench.streams(recorded["duration_s"], recorded["pets_frames"]))
    for key, digest in found.items():
        print(f"{key}: {digest['lines']} lines {digest['sha256'][:12]}")
    assert set(found) == set(recorded["streams"])
    changed = {k: (recorded["streams"][k], d) for k, d in found.items() if recorded["streams"][k] != d}
    assert not changed, f"event streams changed: {sorted(changed)}"
    assert all(int(d["lines"]) > 0 for d in found.values())
