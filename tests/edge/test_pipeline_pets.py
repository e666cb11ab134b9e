"""The whole edge path on real footage: PETS09-S2L1 with its independent ground truth.

- The example config's floor calibration against every ground-truth world position.
- `showroom edge track` on a short segment (real detector, real video): MOT rows compared with the ground
  truth, and the events byte-identical between two runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from edge.config import load_config
from edge.events import parse_event
from edge.floor.calibration import calibrate_node
from showroom.cli import main

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "examples" / "pets09.yaml"
SEGMENT = 100
OFFSET_M = np.array([25.0, 20.0])  # examples/pets09.yaml: floor = PETS ground plane + (25, 20) m


def load_gt(pets_dir: Path) -> np.ndarray:
    gt = np.loadtxt(pets_dir / "gt.txt", delimiter=",")
    return gt[gt[:, 6] > 0]


def test_example_calibration_matches_every_ground_truth_world_position(pets_dir: Path) -> None:
    gt = load_gt(pets_dir)
    feet_px = np.column_stack([gt[:, 2] + gt[:, 4] / 2, gt[:, 3] + gt[:, 5]]) * 0.625
    projection = calibrate_node(load_config(CONFIG))["view-1"]
    floor, ok = projection.to_floor(feet_px)
    errors = np.linalg.norm(floor - (gt[:, 7:9] + OFFSET_M), axis=1)
    print(
        f"calibration on {len(gt)} ground-truth foot points: "
        f"mean {errors.mean():.3f} m, max {errors.max():.3f} m"
    )
    assert ok.all()
    assert errors.mean() < 0.06
    assert np.percentile(errors, 99) < 0.25


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ax2, ay2, bx2, by2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    return np.asarray(inter / ((a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter))


def test_edge_track_on_a_pets_segment(pets_dir: Path, model_dir: Path, tmp_path: Path) -> None:
    video = pets_dir / "vtest_480x360.avi"
    runner = CliRunner()
    outputs = []
    for run in ("a", "b"):
        mot, events = tmp_path / f"tracks-{run}.txt", tmp_path / f"events-{run}.jsonl"
        args = ["edge", "track", str(video), "--config", str(CONFIG), "--max-frames", str(SEGMENT)]
        args += ["--mot-out", str(mot), "--events-out", str(events), "--no-progress"]
        result = runner.invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        outputs.append((mot.read_bytes(), events.read_bytes()))
    assert outputs[0] == outputs[1], "same video and config must give byte-identical tracks and events"
    mot_text, events_bytes = outputs[0]
    for line in events_bytes.splitlines():
        parse_event(line)  # every event is a valid contract payload
    assert any(json.loads(line)["type"] == "heat" for line in events_bytes.splitlines())

    rows = np.array([[float(v) for v in line.split(",")] for line in mot_text.decode().splitlines()])
    assert rows.shape[1] == 10 and (rows[:, 7:] == -1).all()
    assert rows[:, 0].min() >= 1 and rows[:, 0].max() <= SEGMENT
    gt = load_gt(pets_dir)
    gt = gt[gt[:, 0] <= SEGMENT]
    matched = switches = 0
    last_track: dict[int, int] = {}
    for frame in range(1, SEGMENT + 1):
        g = gt[gt[:, 0] == frame]
        t = rows[rows[:, 0] == frame]
        if not len(g) or not len(t):
            continue
        overlap = iou(g[:, 2:6] * 0.625, t[:, 2:6])
        # One-to-one, best overlap first (MOTChallenge matches at IoU >= 0.5).
        taken_g: set[int] = set()
        taken_t: set[int] = set()
        for flat in np.argsort(-overlap, axis=None):
            gi, ti = (int(v) for v in np.unravel_index(flat, overlap.shape))
            if overlap[gi, ti] < 0.5:
                break
            if gi in taken_g or ti in taken_t:
                continue
            taken_g.add(gi)
            taken_t.add(ti)
            person, track = int(g[gi, 1]), int(t[ti, 1])
            matched += 1
            switches += int(person in last_track and last_track[person] != track)
            last_track[person] = track
    recall = matched / len(gt)
    print(f"PETS frames 1-{SEGMENT}: recall {recall:.3f}, {switches} identity switches")
    assert recall >= 0.8
    assert switches <= 3  # the full clip has 8 (bench/bench_tracking.py)
