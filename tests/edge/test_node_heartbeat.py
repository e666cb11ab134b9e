"""The heartbeat: camera snapshots, outbox and node readings mapped onto the contract."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from node_testkit import T0, make_events

from edge.events import ContractError, EventStamper, Heartbeat, parse_event, to_json
from edge.node.heartbeat import ModelInfo, NodeVitals, build_heartbeat
from edge.node.outbox import Outbox, OutboxStats
from edge.node.outbox_writer import OutboxWriter
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


def test_heartbeat_reports_what_a_full_disk_refused_and_holds(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", 10_000_000) as outbox:
        stamper = EventStamper("s", "n", next_seq=outbox.next_seq)
        writer = OutboxWriter(outbox, max_held=1000)
        writer.store(make_events(stamper, 2))
        # A real "database or disk is full": the file may not grow past its current pages.
        (pages,) = outbox._db.execute("PRAGMA page_count").fetchone()
        outbox._db.execute(f"PRAGMA max_page_count = {pages}")
        assert writer.store(make_events(stamper, 120)) == []
        assert writer.store(make_events(stamper, 3)) == []
        stats = outbox.stats()
        common = {
            "cameras": [snapshot("door")],
            "outbox": replace(stats, depth=stats.depth + writer.held),  # as the runtime counts it
            "oldest_unsent_age_s": None,
            "model": ModelInfo("m", None),
            "uptime_s": 60.0,
            "vitals": NodeVitals(tmp_path / "no-thermal"),
        }
        beat = build_heartbeat(
            stamper,
            T0,
            write_failures=writer.failures,
            held=writer.held,
            **common,  # type: ignore[arg-type]
        )
    parsed = parse_event(to_json(beat))
    assert isinstance(parsed, Heartbeat)
    assert (parsed.outbox_write_failures, parsed.outbox_held, parsed.outbox_depth) == (2, 123, 125)
    quiet = build_heartbeat(EventStamper("s", "n"), T0, **common)  # type: ignore[arg-type]
    assert (quiet.outbox_write_failures, quiet.outbox_held) == (0, 0)
    raw = json.loads(to_json(beat))
    raw["outbox_held"] = -1
    with pytest.raises(ContractError, match="outbox_held"):
        parse_event(json.dumps(raw))
    del raw["outbox_held"], raw["outbox_write_failures"]  # a node from before these fields
    older = parse_event(json.dumps(raw))
    assert isinstance(older, Heartbeat) and (older.outbox_write_failures, older.outbox_held) == (0, 0)
