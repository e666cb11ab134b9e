"""`showroom demo` on a machine without Mosquitto: the embedded Python broker (amqtt) carries the node's
events to the aggregator (MQTT 3.1.1 on both sides)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from showroom.demo import free_port, mosquitto_binary


def test_mosquitto_is_looked_up_on_path_and_beside_it(tmp_path: Path) -> None:
    (tmp_path / "sbin").mkdir()
    (tmp_path / "bin").mkdir()
    binary = tmp_path / "sbin" / "mosquitto"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert mosquitto_binary(str(tmp_path / "bin")) == str(binary)
    assert mosquitto_binary(str(tmp_path / "elsewhere")) is None


def test_demo_without_mosquitto_runs_on_the_embedded_broker(tmp_path: Path) -> None:
    bin_dir = str(Path(sys.executable).parent)
    assert mosquitto_binary(bin_dir) is None, "the test needs a PATH without mosquitto"
    port = free_port()
    argv = [str(Path(sys.executable).with_name("showroom")), "demo", "--stores", "1", "--days", "0"]
    proc = subprocess.Popen(
        [*argv, "--no-video", "--port", str(port), "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PATH": bin_dir},
    )
    output: list[str] = []
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            output.append(raw.decode(errors="replace").rstrip())
            if "Press Ctrl-C to stop." in output[-1]:
                break
        assert proc.poll() is None, "\n".join(output)
        assert any("embedded amqtt" in line for line in output), "\n".join(output)
        db = tmp_path / "aggregator.sqlite"
        deadline = time.monotonic() + 60
        seen = 0
        while time.monotonic() < deadline and not seen:
            with sqlite3.connect(db) as conn:
                seen = conn.execute(
                    "SELECT count(*) FROM events WHERE store_id = 'aurora-sh-01' AND type = 'heartbeat'"
                ).fetchone()[0]
            time.sleep(1)
        assert seen, "the node's heartbeat never reached the aggregator through the embedded broker"
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        output += rest.decode(errors="replace").splitlines()
    assert proc.returncode == 0, "\n".join(output)
    assert "demo stopped" in output[-1]
    assert "embedded MQTT broker (amqtt) on 127.0.0.1" in (tmp_path / "logs" / "broker.log").read_text()
