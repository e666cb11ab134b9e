"""The node runtime end to end: real footage, real detector and analytics, real Mosquitto."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from node_testkit import (
    PETS_VIDEO,
    MjpegServer,
    Recorder,
    node_config_dict,
    pets_camera,
    running_mosquitto,
)

from edge.config import load_config, parse_config, state_dir
from edge.events import EVENT_TYPES, MAX_PAYLOAD_BYTES, CameraHealth, Heartbeat, parse_event
from edge.node.outbox import Outbox
from edge.node.runtime import NodeRuntime, RuntimeOptions
from edge.node.sources import Backoff, HealthRules

REPO = Path(__file__).resolve().parents[2]


def short_clip(path: Path, n: int = 12) -> Path:
    cap = cv2.VideoCapture(str(PETS_VIDEO))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (480, 360))
    for _ in range(n):
        writer.write(cap.read()[1])
    writer.release()
    cap.release()
    return path


def dark_clip(path: Path, n: int = 20) -> Path:
    """A lens covered by a hand: dark, noisy, featureless frames."""
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (480, 360))
    for _ in range(n):
        writer.write(np.clip(rng.normal(10, 3, (360, 480, 3)), 0, 255).astype(np.uint8))
    writer.release()
    return path


def test_broken_cameras_are_reported_and_the_good_one_keeps_going(tmp_path: Path) -> None:
    cap = cv2.VideoCapture(str(PETS_VIDEO))
    images = [cap.read()[1] for _ in range(10)]
    cap.release()
    stream = MjpegServer(images, frames=10)
    # The commissioning reference of a camera that has since been knocked: its view then was elsewhere.
    turn = cv2.getRotationMatrix2D((240, 180), 8, 1.0)
    turn[0, 2] += 70
    reference = tmp_path / "moved-reference.png"
    cv2.imwrite(str(reference), cv2.warpAffine(images[0], turn, (480, 360), borderMode=cv2.BORDER_REFLECT))
    with running_mosquitto(tmp_path) as broker:
        recorder = Recorder(broker.port)
        cameras = [
            pets_camera("good", loop=True),
            pets_camera("bad-url", source="rtsp://127.0.0.1:9/no-such-camera"),
            pets_camera("stalls", source=stream.url),
            pets_camera("ends", source=short_clip(tmp_path / "short.avi")),
            pets_camera("covered", source=dark_clip(tmp_path / "dark.avi"), loop=True),
            pets_camera("knocked", loop=True, reference_image=str(reference)),
        ]
        config = parse_config(node_config_dict(tmp_path, broker.url, cameras))
        options = RuntimeOptions(
            heartbeat_s=1.0,
            health=HealthRules(stall_after_s=1.5, covered_after_s=2.0, moved_after_s=2.0),
            backoff=Backoff(0.2, 1.0),
            read_timeout_s=6.0,  # a long stall window for the 1 s heartbeats to see
            stop_when_cameras_end=False,
        )
        runtime = NodeRuntime(config, options=options)
        try:
            summary = runtime.run(duration_s=8.0)
        finally:
            stream.close()
        assert recorder.wait_for(lambda: json.loads(recorder.payloads("status")[-1])["status"] == "offline")
        recorder.close()
    beats = [parse_event(p) for p in recorder.payloads("heartbeat")]
    assert len(beats) >= 5
    history: dict[str, list[CameraHealth]] = {}
    for beat in beats:
        assert isinstance(beat, Heartbeat)
        for cam in beat.cameras:
            history.setdefault(cam.camera_id, []).append(cam)
    last = {cam: states[-1] for cam, states in history.items()}
    print({cam: (h.state, h.fps, h.reconnects, h.quality, h.detail) for cam, h in last.items()})
    assert last["good"].state == "ok" and last["good"].fps >= 3.0
    assert last["good"].inference_ms > 0
    assert last["bad-url"].state == "connecting" and last["bad-url"].reconnects >= 2
    assert last["bad-url"].quality == "unusable"
    assert any(h.state == "stalled" for h in history["stalls"])
    # The stream comes back on reconnect, sends its few frames and stalls again: never better than poor.
    assert last["stalls"].reconnects >= 1 and last["stalls"].quality in ("poor", "unusable")
    assert last["ends"].state == "ended"
    assert last["covered"].state == "covered" and "covered" in (last["covered"].detail or "")
    assert last["knocked"].state == "moved" and "SSIM" in (last["knocked"].detail or "")
    # The good camera was analysed all along, at its own pace, while the others failed around it.
    # (On a loaded 2-core machine the detector may fall behind: then frames are dropped, oldest first,
    # and counted, but the camera is still analysed.)
    analysed, dropped = summary.frames_by_camera["good"], last["good"].dropped_frames
    assert analysed >= 10 and analysed + dropped >= 30
    fps_seen = sorted(h.fps for h in history["good"][2:])
    assert fps_seen[len(fps_seen) // 2] >= 3.5, fps_seen  # the median heartbeat: delivered at its own pace
    assert summary.pipeline_errors == 0
    assert beats[-1].model_id == "rtmdet-nano-person" and beats[-1].model_sha256 is not None
    assert beats[-1].memory_mb is not None and beats[-1].cpu_percent is not None
    assert beats[-1].uptime_s > 5


def _allowed_keys() -> set[str]:
    keys: set[str] = set()
    for cls in [*EVENT_TYPES.values(), CameraHealth]:
        for name, info in cls.model_fields.items():
            keys.add(info.alias or name)
    return keys


_BASE64_RUN = re.compile(r"[A-Za-z0-9+/=_-]{80,}")
_FORBIDDEN_WORDS = (
    "image",
    "jpeg",
    "jpg",
    "png",
    "crop",
    "face",
    "embedding",
    "feature",
    "pixel",
    "thumb",
    "b64",
)


def _walk(value: object, path: str = "") -> list[tuple[str, object]]:
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in [(f"{path}.{k}", k), *_walk(v, f"{path}.{k}")]]
    if isinstance(value, list):
        return [item for i, v in enumerate(value) for item in _walk(v, f"{path}[{i}]")]
    return [(path, value)]


def _lists(value: object, path: str = "") -> list[tuple[str, list[object]]]:
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _lists(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [(path, value), *(item for i, v in enumerate(value) for item in _lists(v, f"{path}[{i}]"))]
    return []


def test_privacy_every_payload_of_a_run_on_real_footage_is_small_contract_json(tmp_path: Path) -> None:
    with running_mosquitto(tmp_path) as broker:
        recorder = Recorder(broker.port)
        assert recorder.wait_for(lambda: recorder.client.is_connected())
        # The whole clip at 3 fps with a 320x256 network input, to keep the test short on 2 cores.
        detector = {"model": "rtmdet-nano-person", "input_size_wh": [320, 256], "score_threshold": 0.2}
        camera = pets_camera("pets", fps=3)
        data = node_config_dict(tmp_path, broker.url, [camera], detector=detector)
        tracker = data.setdefault("tracker", {})
        assert isinstance(tracker, dict)
        tracker["reid"] = {}  # appearance embeddings are computed on the box, and must stay there
        config = parse_config(data)
        runtime = NodeRuntime(config, options=RuntimeOptions(heartbeat_s=2.0, realtime=False))
        summary = runtime.run()
        assert summary.stop_reason == "every camera ended"
        assert summary.reid_boxes > 50, summary
        expected = summary.events  # events, heat and heartbeats all went through the outbox
        assert recorder.wait_for(
            lambda: len(recorder.payloads()) - len(recorder.payloads("status")) >= expected
        )
        recorder.close()
    messages = recorder.messages
    assert summary.frames >= 235  # the whole clip (79.5 s) at 3 fps
    allowed = _allowed_keys()
    sizes = []
    for topic, payload, _ in messages:
        event = parse_event(payload)  # contract JSON, or this raises
        assert topic.endswith("/" + event.kind)
        sizes.append(len(payload))
        assert len(payload) <= (MAX_PAYLOAD_BYTES if event.kind == "heat" else 4096)
        data = json.loads(payload)
        for path, value in _walk(data):
            if path.rsplit(".", 1)[-1] == value:  # a key
                key = str(value)
                assert key in allowed or path.startswith(".calibration_error_m."), f"unexpected field {path}"
                assert not any(word in key.lower() for word in _FORBIDDEN_WORDS), path
            elif isinstance(value, str):
                assert len(value) <= 200, f"{path} carries a {len(value)}-character string"
                assert not _BASE64_RUN.search(value), f"{path} looks like encoded binary data"
        for path, value in _lists(data):
            floats = [v for v in value if isinstance(v, float) and not v.is_integer()]
            assert len(floats) < 32, f"{path} holds {len(floats)} fractions: shaped like an embedding"
    # Clean end: every visit that started was ended (open ones by the shutdown flush).
    events = [json.loads(p) for t, p, _ in messages if t.endswith("/events")]
    started = {e["visitor_id"] for e in events if e["type"] == "visit.started"}
    ended = {e["visitor_id"]: e["end_reason"] for e in events if e["type"] == "visit.ended"}
    assert started and started <= set(ended), "open visits were not flushed at the end"
    kinds = {parse_event(p).kind for _, p, _ in messages}
    assert {"heartbeat", "status"} <= kinds
    print(f"privacy: {len(messages)} payloads, kinds {sorted(kinds)}, largest {max(sizes)} bytes")


def test_simulated_showroom_skips_the_detector_and_keeps_cameras_in_step(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "examples" / "sim-store.yaml").read_text())
    data["outbox"] = {"path": str(tmp_path / "outbox.sqlite"), "max_mb": 50}
    with running_mosquitto(tmp_path) as broker:
        recorder = Recorder(broker.port)
        assert recorder.wait_for(lambda: recorder.client.is_connected())
        data["broker"] = {"url": broker.url}
        config = parse_config(data)
        runtime = NodeRuntime(config, options=RuntimeOptions(heartbeat_s=1.0, realtime=False))
        summary = runtime.run(duration_s=5.0)
        stored = summary.events - summary.heartbeats
        assert recorder.wait_for(
            lambda: len(recorder.payloads("events") + recorder.payloads("heat")) >= stored
        )
        recorder.close()
    assert summary.inferred_frames == 0 and summary.frames > 100
    # Each step carried all four cameras' frames of one simulated instant (a rare straggler under load may
    # become a step of its own, never more than 1%).
    assert summary.batches <= summary.frames / 4 * 1.01
    assert set(summary.frames_by_camera) == {c.id for c in config.cameras}
    beats = [parse_event(p) for p in recorder.payloads("heartbeat")]
    assert beats and all(b.model_id == "none" for b in beats)  # type: ignore[attr-defined]
    types = {json.loads(p)["type"] for p in recorder.payloads("events")}
    assert "visit.started" in types, types


def test_relative_inputs_are_found_beside_the_config_and_the_outbox_in_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOWROOM_STATE_DIR", str(tmp_path / "state"))
    cameras = [
        pets_camera("file", source="videos/door.mp4", reference_image="refs/door.png"),
        pets_camera("marked", source="file:door.mp4"),
        pets_camera("stream", source="rtsp://10.0.0.5/stream1"),
    ]
    data = node_config_dict(tmp_path, "mqtt://127.0.0.1:1883", cameras)
    data["outbox"] = {"path": "var/outbox.sqlite"}
    config = parse_config(data)
    runtime = NodeRuntime(config, config_path=tmp_path / "site" / "node.yaml")
    file_cam, marked, stream = runtime.config.cameras
    assert file_cam.source == str(tmp_path / "site" / "videos" / "door.mp4")
    assert file_cam.reference_image == tmp_path / "site" / "refs" / "door.png"
    assert marked.source == str(tmp_path / "site" / "door.mp4")
    assert stream.source == "rtsp://10.0.0.5/stream1"
    node_dir = tmp_path / "state" / config.store_id / config.node_id
    assert runtime.config.outbox.path == node_dir / "var" / "outbox.sqlite"
    data["outbox"] = {"path": str(tmp_path / "elsewhere.sqlite")}  # absolute: as given
    assert NodeRuntime(parse_config(data)).config.outbox.path == tmp_path / "elsewhere.sqlite"


def _repo_files() -> set[Path]:
    skip = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"}
    found: set[Path] = set()
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in skip]
        found.update(Path(folder) / f for f in files)
    return found


@pytest.mark.parametrize("state", ["SHOWROOM_STATE_DIR", "XDG_DATA_HOME", "HOME"])
def test_the_pets_example_node_writes_its_outbox_outside_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    for name in ("SHOWROOM_STATE_DIR", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(state, str(tmp_path))
    expected = {
        "SHOWROOM_STATE_DIR": tmp_path,
        "XDG_DATA_HOME": tmp_path / "showroom",
        "HOME": tmp_path / ".local" / "share" / "showroom",
    }[state]
    assert state_dir() == expected
    example = REPO / "examples" / "pets09.yaml"
    config = load_config(example)
    before = _repo_files()
    runtime = NodeRuntime(config, config_path=example)
    path = runtime.config.outbox.path
    assert path == expected / config.store_id / config.node_id / "outbox.sqlite"
    with Outbox(path, int(config.outbox.max_mb * 1024 * 1024)) as outbox:  # what `edge run` opens first
        outbox.extend([])
    assert path.exists()
    assert not path.is_relative_to(REPO)
    assert _repo_files() == before, sorted(map(str, _repo_files() - before))


def test_disk_budget_while_offline_sheds_heat_first_and_reports_it(tmp_path: Path) -> None:
    detector = {"model": "rtmdet-nano-person", "input_size_wh": [320, 256], "score_threshold": 0.2}
    camera = pets_camera("pets", source=short_clip(tmp_path / "half.avi", n=400), fps=2)  # 40 s of the clip
    data = node_config_dict(tmp_path, "mqtt://127.0.0.1:9", [camera], detector=detector)
    data["outbox"] = {"path": str(tmp_path / "outbox.sqlite"), "max_mb": 0.006}  # about 6 KB
    runtime = NodeRuntime(parse_config(data), options=RuntimeOptions(heartbeat_s=1.0, realtime=False))
    summary = runtime.run()  # the broker is unreachable all along: everything stays in the outbox
    assert summary.events > 8
    with Outbox(tmp_path / "outbox.sqlite", 6 * 1024 * 1024) as outbox:
        stats = outbox.stats()
        kept = outbox.pending(limit=10_000)
        beats = [parse_event(r.payload) for r in kept if r.type == "heartbeat"]
    assert stats.evicted_total > 0 and stats.stored_bytes <= 0.006 * 1024 * 1024
    evicted = stats.evicted_by_type
    assert evicted.get("heat", 0) >= 1
    # Visits go last: none was evicted while anything else was left to evict.
    if evicted.get("visit.started") or evicted.get("visit.ended"):
        assert all(r.type in ("visit.started", "visit.ended") for r in kept)
    if beats:
        assert max(b.outbox_evicted for b in beats) > 0  # type: ignore[attr-defined]
