"""`showroom demo` smoke test: it starts, the dashboard answers, a node publishes, Ctrl-C stops everything."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from showroom.demo import free_port

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(),
    reason="needs the mosquitto binary",
)


def _showroom() -> list[str]:
    script = Path(sys.executable).with_name("showroom")
    fallback = [sys.executable, "-c", "from showroom.cli import main; main()"]
    return [str(script)] if script.exists() else fallback


def test_demo_starts_serves_the_dashboard_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    argv = [*_showroom(), "demo", "--stores", "1", "--days", "0", "--no-video", "--port", str(port)]
    proc = subprocess.Popen(
        [*argv, "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    output: list[str] = []
    try:
        began = time.monotonic()
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            output.append(line)
            if "Press Ctrl-C to stop." in line:
                break
        assert proc.poll() is None, "\n".join(output)
        startup_s = time.monotonic() - began
        print(f"demo up in {startup_s:.1f} s")
        assert startup_s < 60
        text = "\n".join(output)
        assert f"http://127.0.0.1:{port}" in text and "manager / showroom-demo" in text
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.status == 200
        # The live node publishes through the broker into the aggregator's database.
        db = tmp_path / "aggregator.sqlite"
        deadline = time.monotonic() + 60
        seen = 0
        while time.monotonic() < deadline and not seen:
            with sqlite3.connect(db) as conn:
                seen = conn.execute("SELECT COUNT(*) FROM nodes WHERE store_id = 'aurora-sh-01'").fetchone()[
                    0
                ]
            time.sleep(1)
        assert seen, "the node never reached the aggregator"
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        output += rest.decode(errors="replace").splitlines()
    assert proc.returncode == 0, "\n".join(output)
    assert "demo stopped" in output[-1]
    for name in ("broker", "aggregator", "dashboard", "node-aurora-sh-01"):
        assert (tmp_path / "logs" / f"{name}.log").exists()
    node_log = (tmp_path / "logs" / "node-aurora-sh-01.log").read_text()
    assert "stopped (SIGTERM)" in node_log  # the node shut down in order (flush, drain, offline)
