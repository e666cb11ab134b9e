"""`sim://` camera sources and the simulation behind them: valid frames, shared people, determinism."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from edge.config import load_config
from edge.sim.scenarios import get_scenario
from edge.sim.simulation import Simulation
from edge.sim.source import SimUrl, SimUrlError, open_sim_source
from edge.sources import CameraFrame, FrameSource
from showroom.sim.truth import compute_truth

CONFIG = load_config(Path(__file__).parents[3] / "examples" / "sim-store.yaml")


def test_sim_source_yields_detection_frames_at_the_camera_rate() -> None:
    start = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
    cam = CONFIG.cameras[2]
    source = open_sim_source(
        "sim://saturday-peak?seed=3", cam, config=CONFIG, start_utc=start, realtime=False
    )
    assert isinstance(source, FrameSource)
    frames = list(itertools.islice(source.frames(), 1500))
    source.close()
    assert all(
        isinstance(f, CameraFrame) and f.image_bgr is None and f.detections is not None for f in frames
    )
    assert {f.camera_id for f in frames} == {cam.id}
    assert [f.index for f in frames] == list(range(1500))
    assert frames[1].ts_utc - frames[0].ts_utc == timedelta(seconds=1 / cam.fps)
    assert frames[0].ts_utc == start
    assert all(f.detections is not None and f.detections.resolution_wh == (1920, 1080) for f in frames)
    assert sum(len(f.detections or []) for f in frames) > 100  # people come through the doors


def test_cameras_of_one_node_share_the_same_people() -> None:
    start = datetime(2026, 11, 21, 7, 0, tzinfo=UTC)
    a = open_sim_source(
        "sim://demo?seed=5", CONFIG.cameras[0], config=CONFIG, start_utc=start, realtime=False
    )
    b = open_sim_source(
        "sim://demo?seed=5", CONFIG.cameras[1], config=CONFIG, start_utc=start, realtime=False
    )
    assert a.node is b.node  # type: ignore[attr-defined]
    c = open_sim_source(
        "sim://demo?seed=6", CONFIG.cameras[1], config=CONFIG, start_utc=start, realtime=False
    )
    assert c.node is not a.node  # type: ignore[attr-defined]


def test_realtime_source_paces_frames_to_the_wall_clock() -> None:
    cam = CONFIG.cameras[3].model_copy(update={"fps": 10.0})
    source = open_sim_source("sim://demo?seed=11", cam, config=CONFIG, realtime=True)
    got: list[CameraFrame] = []
    began = time.monotonic()
    for frame in source.frames():
        got.append(frame)
        if len(got) == 6:
            break
    elapsed = time.monotonic() - began
    assert 0.35 <= elapsed <= 2.0
    now = datetime.now(UTC)
    assert abs((got[-1].ts_utc - now).total_seconds()) < 0.5
    stopper = threading.Timer(0.3, source.close)
    stopper.start()
    assert sum(1 for _ in source.frames()) < 10  # close() ends the iteration
    stopper.join()


def test_a_camera_in_an_outage_delivers_no_frames_in_its_window() -> None:
    scenario = get_scenario("camera-outage")
    out = scenario.camera_outages[0]
    cam = CONFIG.cameras[out.camera_index or 0].model_copy(update={"fps": 1.0})
    source = open_sim_source("sim://camera-outage?seed=1", cam, config=CONFIG, realtime=False)
    start = scenario.start_utc(CONFIG.timezone)
    seen = [
        (f.ts_utc - start).total_seconds() for f in itertools.islice(source.frames(), int(1300 * cam.fps))
    ]
    assert not [t for t in seen if out.start_s <= t < out.end_s]
    assert max(seen) > out.end_s


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("rtsp://x", "not a sim:// URL"),
        ("sim://no-such-scenario", "unknown scenario"),
        ("sim://demo?seed=x", "seed must be an integer"),
        ("sim://demo?speed=2", "unknown parameter"),
    ],
)
def test_bad_sim_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(SimUrlError, match=message):
        SimUrl.parse(url)


def test_same_seed_same_world_other_seed_other_world() -> None:
    scenario = get_scenario("groups-at-door").with_duration(300)

    def run(seed: int) -> tuple[int, float, np.ndarray]:
        sim = Simulation(CONFIG, scenario, seed)
        end = sim.finish()
        gt = compute_truth(sim, dt_s=0.2)
        return gt.visitors, end, sim.samples(0, 200, 1.0).xy_m

    a, b, c = run(1), run(1), run(2)
    assert a[0] == b[0] and a[1] == b[1] and np.array_equal(a[2], b[2])
    assert (a[0], a[1]) != (c[0], c[1])


def test_saturday_peak_has_150_plus_visitors_an_hour_and_a_weekday_morning_is_quiet() -> None:
    peak = [compute_truth(_finished("saturday-peak", s), dt_s=0.5).visitors for s in (1, 2, 3)]
    quiet = [compute_truth(_finished("quiet-weekday", s), dt_s=0.5).visitors for s in (1, 2, 3)]
    assert np.mean(peak) >= 150
    assert np.mean(quiet) <= 25


def _finished(name: str, seed: int) -> Simulation:
    sim = Simulation(CONFIG, get_scenario(name), seed)
    sim.finish()
    return sim


def test_groups_at_the_door_walk_in_side_by_side() -> None:
    sim = _finished("groups-at-door", 4)
    gt = compute_truth(sim, dt_s=0.1)
    starts: dict[int, list[float]] = {}
    people = sim.people()
    for v in gt.visits:
        starts.setdefault(people[v.pid].group, []).append(v.start_s)
    abreast = [max(s) - min(s) for s in starts.values() if len(s) >= 2]
    assert len(abreast) > 10
    assert np.median(abreast) < 0.5  # members cross the line together
