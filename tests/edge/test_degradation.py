"""Bad input the frame loop cannot reject box by box, on the real pipeline fed by the simulated showroom: a
detector that finds no one for minutes, a calibration that puts people 50 m away, a crowd above the tracker's
capacity. Nothing crashes, structures stay bounded, and each camera's heartbeat says what degrades its
counts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from node_testkit import Recorder, running_mosquitto

from edge.config import NodeConfig, parse_config
from edge.degradation import SILENT_AFTER_S, CameraDegradation
from edge.events import EventStamper, Heartbeat, IdSource, parse_event, to_json
from edge.node.heartbeat import ModelInfo, NodeVitals, build_heartbeat
from edge.node.outbox import OutboxStats
from edge.node.runtime import NodeRuntime, RuntimeOptions
from edge.node.sources import CameraSnapshot, open_source
from edge.pipeline import EdgePipeline
from edge.sim.scenarios import get_scenario
from edge.sim.source import SimulatedNode
from edge.sources import FrameSource

REPO = Path(__file__).resolve().parents[2]
FPS = 2.0
"""Steps per second fed to the pipeline: enough for the tracker, few enough for minutes of store time."""


def sim_store(**changes: Any) -> dict[str, Any]:
    """examples/sim-store.yaml as a dict, re-identification off, cameras at `FPS`."""
    data: dict[str, Any] = yaml.safe_load((REPO / "examples" / "sim-store.yaml").read_text())
    data.setdefault("tracker", {}).pop("reid", None)
    for cam in data["cameras"]:
        cam["fps"] = FPS
    data.update(changes)
    return data


def far_calibration(data: dict[str, Any], camera_id: str, shift_m: float = 50.0) -> dict[str, Any]:
    """The same store with one camera's floor marks entered `shift_m` metres east of where they are (a
    wrong origin): a consistent calibration that puts every person that camera sees 50 m away."""
    wrong = yaml.safe_load(yaml.safe_dump(data))
    cam = next(c for c in wrong["cameras"] if c["id"] == camera_id)
    cam["calibration"]["floor_points_m"] = [[x + shift_m, y] for x, y in cam["calibration"]["floor_points_m"]]
    return wrong


def steps(
    truth: NodeConfig, pipeline: EdgePipeline, scenario: str, end_s: float, seed: int = 1
) -> Iterator[float]:
    """Feed `pipeline` the detections of the simulated `scenario` (drawn with the true calibration) up to
    `end_s`; yields the simulation time after each step."""
    node = SimulatedNode(truth, get_scenario(scenario), seed)
    for t_s, detections in node.batches(FPS, end_s):
        pipeline.process(node.start_utc + timedelta(seconds=t_s), detections)
        yield t_s


def heartbeat_of(pipeline: EdgePipeline) -> Heartbeat:
    """The heartbeat the node would send now, through the contract's JSON and back."""
    snapshots = [
        CameraSnapshot(cid, "ok", None, FPS, FPS, 0.0, 0, 0, "excellent", 0)
        for cid in sorted(pipeline.projections)
    ]
    heartbeat = build_heartbeat(
        EventStamper("sim-store-01", "node-a", IdSource(0)),
        datetime(2026, 11, 21, 6, 0, tzinfo=UTC),
        cameras=snapshots,
        outbox=OutboxStats(0, 0, 1, None),
        oldest_unsent_age_s=None,
        model=ModelInfo("none", None),
        uptime_s=1.0,
        vitals=NodeVitals(),
        degradation=pipeline.degradation(),
    )
    parsed = parse_event(to_json(heartbeat))
    assert isinstance(parsed, Heartbeat)
    return parsed


def degraded(pipeline: EdgePipeline) -> dict[str, tuple[str, ...]]:
    return {cid: d.degraded for cid, d in pipeline.degradation().items() if d.degraded}


def test_a_detector_that_finds_no_one_for_minutes_is_reported_then_cleared() -> None:
    # Camera 0 (cam-back-west) delivers frames, but its detector finds no one from minute 2 to minute 12.
    config = parse_config(sim_store())
    pipeline = EdgePipeline(config, EventStamper(config.store_id, config.node_id, IdSource(0)))
    blind = config.cameras[0].id
    seen: dict[str, list[float]] = {}
    most_tracks = 0
    for t_s in steps(config, pipeline, "detector-blind", 760.0):
        most_tracks = max(most_tracks, pipeline.tracker.tracks_alive)  # type: ignore[attr-defined]
        for cid in degraded(pipeline):
            seen.setdefault(cid, []).append(t_s)
        if t_s == 700.0:
            beat = heartbeat_of(pipeline)
            health = {c.camera_id: c for c in beat.cameras}
            print(f"at {t_s:.0f} s: {health[blind].model_dump(exclude_none=True)}")
            assert health[blind].degraded == ["no_detections"]
            assert health[blind].no_detections_s is not None and health[blind].no_detections_s >= 570
            assert health[blind].detail is not None and "no detections for" in health[blind].detail
            assert all(not c.degraded for c in beat.cameras if c.camera_id != blind)
    # Reported from SILENT_AFTER_S into the outage until its first detection after it, on that camera only.
    assert set(seen) == {blind}, seen
    assert min(seen[blind]) >= 120 + SILENT_AFTER_S - 30, min(seen[blind])
    assert min(seen[blind]) <= 120 + SILENT_AFTER_S + 30, min(seen[blind])
    assert 715 <= max(seen[blind]) < 760, max(seen[blind])
    assert not degraded(pipeline)
    assert most_tracks < 40 and pipeline.stats.untracked == 0


def test_a_calibration_that_puts_people_50_m_away_is_reported() -> None:
    truth = sim_store()
    wrong = parse_config(far_calibration(truth, "cam-entrance"))
    pipeline = EdgePipeline(wrong, EventStamper(wrong.store_id, wrong.node_id, IdSource(0)))
    for _ in steps(parse_config(truth), pipeline, "saturday-peak", 240.0):
        pass
    beat = heartbeat_of(pipeline)
    health = {c.camera_id: c for c in beat.cameras}
    entrance = health["cam-entrance"]
    print(f"cam-entrance: {entrance.model_dump(exclude_none=True)}; {pipeline.stats}")
    assert entrance.degraded == ["off_floor"]
    assert entrance.off_floor_share is not None and entrance.off_floor_share > 0.9
    assert entrance.detail is not None and "off the floor plan" in entrance.detail
    # The other cameras' people land on the floor, and none of them is reported.
    assert all(
        not c.degraded and (c.off_floor_share or 0) < 0.05
        for c in beat.cameras
        if c.camera_id != "cam-entrance"
    )
    assert pipeline.stats.off_floor > 50


def test_a_crowd_above_the_trackers_capacity_is_reported_and_tracks_stay_bounded() -> None:
    # A car launch: 80-120 people on the floor from minute 5 on, on a node set to track at most 64.
    data = sim_store()
    data["tracker"]["max_tracks"] = 64
    config = parse_config(data)
    capacity = config.tracker.max_tracks
    pipeline = EdgePipeline(config, EventStamper(config.store_id, config.node_id, IdSource(0)))
    most_alive = most_visits = 0
    over_at: float | None = None
    for t_s in steps(config, pipeline, "launch-crowd", 330.0):
        alive = pipeline.tracker.tracks_alive  # type: ignore[attr-defined]
        assert alive <= capacity and len(pipeline.tracks) <= capacity
        most_alive, most_visits = max(most_alive, alive), max(most_visits, len(pipeline.analytics.visits))
        if over_at is None and degraded(pipeline):
            over_at = t_s
    beat = heartbeat_of(pipeline)
    crowded = [c for c in beat.cameras if "over_capacity" in c.degraded]
    print(
        f"crowd: first reported at {over_at} s; tracks alive at most {most_alive} (capacity {capacity}); "
        f"open visits at most {most_visits}; untracked {pipeline.stats.untracked}; "
        f"{[(c.camera_id, c.untracked) for c in crowded]}"
    )
    assert most_alive == capacity  # the crowd filled the tracker...
    assert over_at is not None and crowded  # ...and the heartbeat says so
    assert all(c.untracked > 0 and c.detail and "capacity" in c.detail for c in crowded)
    assert most_visits <= capacity
    assert pipeline.stats.untracked > 0


def test_the_node_heartbeat_reports_a_camera_whose_people_land_off_the_floor(tmp_path: Path) -> None:
    with running_mosquitto(tmp_path) as broker:
        recorder = Recorder(broker.port)
        assert recorder.wait_for(lambda: recorder.client.is_connected())
        data = sim_store(
            outbox={"path": str(tmp_path / "outbox.sqlite"), "max_mb": 50}, broker={"url": broker.url}
        )
        for cam in data["cameras"]:
            cam["source"] = "sim://launch-crowd?seed=3"  # people at the door from the first minute
        truth, config = parse_config(data), parse_config(far_calibration(data, "cam-entrance"))
        true_cameras = {c.id: c for c in truth.cameras}

        def true_view(node: NodeConfig, camera: Any) -> FrameSource:
            # The cameras show the store as it is; only the node's configuration is wrong.
            return open_source(true_cameras[camera.id], truth, realtime=False)

        runtime = NodeRuntime(
            config, options=RuntimeOptions(heartbeat_s=1.0, realtime=False), source_factory=true_view
        )
        summary = runtime.run(duration_s=8.0)
        assert recorder.wait_for(lambda: len(recorder.payloads("heartbeat")) >= summary.heartbeats)
        recorder.close()
    beats = [parse_event(p) for p in recorder.payloads("heartbeat")]
    last = beats[-1]
    assert isinstance(last, Heartbeat)
    health = {c.camera_id: c for c in last.cameras}
    print(f"{summary.frames} frames; cam-entrance: {health['cam-entrance'].model_dump(exclude_none=True)}")
    assert summary.pipeline_errors == 0
    assert health["cam-entrance"].degraded == ["off_floor"]
    assert all("off_floor" not in c.degraded for c in last.cameras if c.camera_id != "cam-entrance")


def test_a_camera_never_analysed_reports_nothing_rather_than_a_guess() -> None:
    config = parse_config(sim_store())
    pipeline = EdgePipeline(config, EventStamper(config.store_id, config.node_id, IdSource(0)))
    assert all(d == CameraDegradation(cid, (), None, None, 0) for cid, d in pipeline.degradation().items())
    beat = heartbeat_of(pipeline)
    assert all(c.no_detections_s is None and c.off_floor_share is None for c in beat.cameras)
