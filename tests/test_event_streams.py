"""Behaviour guard: the edge path's event streams on fixed inputs are byte-identical to the recorded ones.

PETS09-S2L1 (first 300 frames, real detector) and three simulated scenarios (360 s arrivals windows, seed 1)
run through `bench/event_streams.py`; their sha256 digests must equal tests/data/event_streams_short.json,
but for the PETS09 MOT rows, which must equal tests/data/event_streams_short_pets09_mot.txt within float
noise (the detector's last digits depend on the CPU's instruction set). A change that alters what the node
counts must re-record both files on purpose (and say so in its commit):
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
    data = bench.streams(recorded["duration_s"], recorded["pets_frames"])
    for key, digest in bench.digests(data).items():
        print(f"{key}: {digest['lines']} lines {digest['sha256'][:12]}")
    assert bench.mot_reference(RECORDED).exists()
    changed = bench.compare(RECORDED, data)
    assert not changed, "event streams changed:\n" + "\n".join(changed)
    assert all(data.values())


def test_mot_rows_are_compared_within_float_noise_only() -> None:
    bench = _bench_module()
    rows = [f"{f},{i},{100 + f}.25,50.50,20.00,40.00,0.8000,-1,-1,-1" for f in range(1, 101) for i in (1, 2)]
    recorded = "\n".join(rows).encode()
    noisy = recorded.replace(b"50.50,20.00", b"50.51,20.00")  # every row off by 0.01 px
    assert bench.mot_differences(recorded, noisy) == []
    moved = recorded.replace(b"1,2,101.25", b"1,2,101.75")  # one row of 200 off by 0.5 px: within 1 %
    assert bench.mot_differences(recorded, moved) == []
    swapped = "\n".join(r.replace(",1,", ",3,", 1) if int(r.split(",")[0]) > 90 else r for r in rows).encode()
    differ = bench.mot_differences(recorded, swapped)  # an id change over ten frames: 20 rows of 200
    assert len(differ) == 20 and differ[0] == "frame 91 id 1: only recorded"
