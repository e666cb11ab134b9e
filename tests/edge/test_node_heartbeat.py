"""The heartbeat: camera snapshots, outbox and node readings mapped onto the contract."""

from __future__ import annotations

import json
from pathlib import Path

from node_testkit import T0

from edge.events import EventStamper, Heartbeat, parse_event, to_json
from edge.node.heartbeat import ModelInfo, NodeVitals, build_heartbeat
from edge.node.outbox import OutboxStats
from edge.node.sources import CameraSnapshot


def snapshot(camera_id: str, **fields: object) -> CameraSnapshot:
    base: dict[str, object] = {
        "camera_id": camera_id,
        "state": "ok",
        "detail": None,
        "fps": 5.0,
        "target_fps": 5.0,
        "inference_ms": 14.2,
        "dropped_frames": 0,
        "reconnects": 0,
        "quality": "excellent",
        "frames_total": 100,
    }
    return CameraSnapshot(**{**base, **fields})  # type: ignore[arg-type]


def test_heartbeat_carries_cameras_outbox_and_node_and_round_trips(tmp_path: Path) -> None:
    thermal = tmp_path / "thermal"
    for zone, millideg in (("thermal_zone0", "48500"), ("thermal_zone1", "61000"), ("thermal_zone2", "junk")):
        (thermal / zone).mkdir(parents=True)
        (thermal / zone / "temp").write_text(millideg + "\n")
    stamper = EventStamper("store-a", "node-1", next_seq=41)
    beat = build_heartbeat(
        stamper,
        T0,
        cameras=[
            snapshot("door"),
            snapshot("back", state="stalled", detail="no frame for 12 s", fps=0.0, quality="unusable"),
        ],
        outbox=OutboxStats(
            depth=7,
            stored_bytes=9000,
            max_bytes=10**6,
            oldest_stored_at=1.0,
            evicted_by_type={"heat": 3, "heartbeat": 1},
        ),
        oldest_unsent_age_s=12.5,
        model=ModelInfo(
            "rtmdet-nano-person", "4720eda18a18402e7b76d85827d4bc60fba18111fc0b74b559e4d24da9ddc3d2"
        ),
        uptime_s=30 * 24 * 3600.0,  # a month: an appliance outlives any visit
        vitals=NodeVitals(thermal),
        calibration_error_m={"door": 0.041},
    )
    assert beat.seq == 41 and stamper.next_seq == 42  # heartbeats are numbered like every outbox payload
    parsed = parse_event(to_json(beat))
    assert isinstance(parsed, Heartbeat) and parsed == beat
    assert [c.state for c in parsed.cameras] == ["ok", "stalled"]
    assert parsed.cameras[1].detail == "no frame for 12 s"
    assert (parsed.outbox_depth, parsed.oldest_unsent_age_s, parsed.outbox_evicted) == (7, 12.5, 4)
    assert parsed.temperature_c == 61.0  # the hottest readable zone
    assert parsed.memory_mb is not None and parsed.memory_mb > 10
    assert parsed.cpu_percent is not None and parsed.cpu_percent >= 0
    assert parsed.calibration_error_m == {"door": 0.041}
    assert json.loads(to_json(beat))["software_version"]


def test_machine_without_sensors_reports_null_not_a_guess(tmp_path: Path) -> None:
    vitals = NodeVitals(tmp_path / "no-thermal")
    assert vitals.temperature_c() is None
