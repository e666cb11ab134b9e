"""`showroom edge run` as a process: SIGKILL and restart, SIGTERM, the last will, JSON logs, bad input."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from node_testkit import Recorder, node_config_dict, pets_camera, running_mosquitto, write_yaml

from edge.events import parse_event

REPO = Path(__file__).resolve().parents[2]
SHOWROOM = [sys.executable, "-c", "from showroom.cli import main; main()"]
"""The `showroom` command of this checkout, whatever is installed as the console script."""


def start_node(config: Path, *extra: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [*SHOWROOM, "--log-format", "json"]
    args += ["edge", "run", "--config", str(config), "--heartbeat-s", "0.5", *extra]
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log.open("ab"))


def outbox_rows(path: Path) -> list[tuple[int, str]]:
    """The payloads still waiting to be sent (acknowledged ones stay as history, with `sent_at`)."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT seq, event_id FROM outbox WHERE sent_at IS NULL ORDER BY seq")
        return [(int(s), str(e)) for s, e in rows]


def stored_payloads(recorder: Recorder) -> list[dict[str, object]]:
    return [json.loads(p) for t, p, _ in recorder.messages if not t.endswith("/status")]


def test_sigkill_then_restart_resends_unacknowledged_events_and_seq_continues(tmp_path: Path) -> None:
    with running_mosquitto(tmp_path) as broker:
        recorder = Recorder(broker.port)
        assert recorder.wait_for(lambda: recorder.client.is_connected())
        data = node_config_dict(tmp_path, broker.url, [pets_camera("pets", fps=2, loop=True)])
        config = write_yaml(tmp_path / "node.yaml", data)
        outbox = tmp_path / "outbox.sqlite"
        log = tmp_path / "node.log"

        # Run 1: connected for a while, then the broker goes away and payloads pile up in the outbox.
        node = start_node(config, log=log)
        assert recorder.wait_for(lambda: len(recorder.payloads("heartbeat")) >= 3, 60), log.read_text()[
            -2000:
        ]
        broker.stop()
        time.sleep(3.0)
        node.send_signal(signal.SIGKILL)
        node.wait(10)
        unsent = outbox_rows(outbox)
        assert len(unsent) >= 3, "payloads made while the broker was away must be in the outbox"
        first_run_last_seq = unsent[-1][0]

        # Run 2: the broker is back; the restarted node sends the backlog and numbers on.
        broker.start()
        node = start_node(config, log=log)
        try:
            assert recorder.wait_for(
                lambda: {e for _, e in unsent} <= {str(p["event_id"]) for p in stored_payloads(recorder)}, 60
            ), "unacknowledged payloads were not resent after the restart"
            assert recorder.wait_for(
                lambda: max(int(str(p["seq"])) for p in stored_payloads(recorder)) > first_run_last_seq + 2,
                30,
            )
        finally:
            node.send_signal(signal.SIGTERM)
            out, _ = node.communicate(timeout=30)
        assert node.returncode == 0, log.read_text()[-3000:]
        assert b"stopped (SIGTERM)" in out
        assert recorder.wait_for(lambda: json.loads(recorder.payloads("status")[-1])["status"] == "offline")
        recorder.close()

    payloads = stored_payloads(recorder)
    seqs = sorted({int(str(p["seq"])) for p in payloads})
    # Nothing lost across the outage, the kill and the restart: the numbers have no gap.
    assert seqs == list(range(seqs[-1] + 1)), f"gaps: {sorted(set(range(seqs[-1] + 1)) - set(seqs))}"
    by_id: dict[str, int] = {}
    for p in payloads:
        by_id[str(p["event_id"])] = by_id.get(str(p["event_id"]), 0) + 1
    assert len(by_id) == len(seqs)  # one event id per seq: the restart re-used no number
    assert outbox_rows(outbox) == []  # the clean stop drained everything
    for p in payloads:
        parse_event(json.dumps(p))
    # Structured logs: every stderr line of both runs is one JSON object.
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert any("starting" in r["message"] for r in records)
    assert {"ts", "level", "logger", "message"} <= set(records[0])


def test_killed_node_shows_offline_through_its_last_will_and_broker_flag_wins(tmp_path: Path) -> None:
    with running_mosquitto(tmp_path) as broker:
        recorder = Recorder(broker.port)
        # The file names a broker that does not exist; --broker (as at provisioning time) wins.
        data = node_config_dict(tmp_path, "mqtt://127.0.0.1:9", [pets_camera("pets", fps=1, loop=True)])
        config = write_yaml(tmp_path / "node.yaml", data)
        node = start_node(config, "--broker", broker.url, log=tmp_path / "node.log")
        try:
            assert recorder.wait_for(lambda: recorder.payloads("status"), 60)
            assert json.loads(recorder.payloads("status")[-1])["status"] == "online"
        finally:
            node.send_signal(signal.SIGKILL)
            node.wait(10)
        assert recorder.wait_for(
            lambda: json.loads(recorder.payloads("status")[-1])["status"] == "offline", 20
        )
        recorder.close()


def test_bad_config_exits_with_every_problem_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("store_id: Bad Store\nnode_id: n\ncameras: []\n")
    proc = subprocess.run(
        [*SHOWROOM, "edge", "run", "--config", str(bad)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "store_id" in proc.stderr and "cameras" in proc.stderr and "floor" in proc.stderr


def test_missing_broker_password_is_named_and_the_outbox_is_left_closed(tmp_path: Path) -> None:
    data = node_config_dict(tmp_path, "mqtt://127.0.0.1:1883", [pets_camera("pets")])
    data["broker"] = {"url": "mqtt://127.0.0.1:1883", "username": "node-1", "password_env": "NODE_PW_NOT_SET"}
    config = write_yaml(tmp_path / "node.yaml", data)
    env = {k: v for k, v in os.environ.items() if k != "NODE_PW_NOT_SET"}
    proc = subprocess.run(
        [*SHOWROOM, "edge", "run", "--config", str(config)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "broker.password_env" in proc.stderr and "NODE_PW_NOT_SET" in proc.stderr
    assert not (tmp_path / "outbox.sqlite-wal").exists()  # closed cleanly (WAL checkpointed)


def test_check_verifies_everything_without_running(tmp_path: Path) -> None:
    cameras = [pets_camera("pets"), pets_camera("gone", source="videos/missing.mp4")]
    config = write_yaml(tmp_path / "node.yaml", node_config_dict(tmp_path, "mqtt://127.0.0.1:9", cameras))
    cmd = [*SHOWROOM, "edge", "run", "--check", "--config"]
    proc = subprocess.run([*cmd, str(config)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "cameras[gone].source" in proc.stderr and "missing.mp4" in proc.stderr

    config = write_yaml(tmp_path / "node.yaml", node_config_dict(tmp_path, "mqtt://127.0.0.1:9", cameras[:1]))
    proc = subprocess.run([*cmd, str(config)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "detector rtmdet-nano-person (sha256 4720eda18a18402e" in proc.stdout
    assert "calibration error" in proc.stdout and proc.stdout.rstrip().endswith(f"OK {config}")
    assert "0 unsent, next seq 0" in proc.stdout  # nothing was run, nothing was sent
    assert "re-identification" not in proc.stdout  # off unless configured

    data = node_config_dict(tmp_path, "mqtt://127.0.0.1:9", cameras[:1], tracker={"reid": {}})
    config = write_yaml(tmp_path / "node.yaml", data)
    proc = subprocess.run([*cmd, str(config)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "re-identification person-reid-0288 (sha256 f3966d905e723202" in proc.stdout
