"""The installer's page keeps up by itself: a node killed during the test turns stale (offline, with the
age of its last heartbeat, its camera no longer "ok") within one heartbeat period, with no reload.

Everything is real: a private Mosquitto, `showroom aggregator run`, a node's own outbox and MQTT publisher
(live_node.py, killed with SIGKILL so only the broker's last will speaks for it), `showroom dashboard` and
Debian's Chromium.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dash_world as world
import pytest
from dash_server import CHROMIUM, SHOWROOM, dashboard_server, launch_chromium, log_in

from aggregator.queries import Queries
from dashboard.attention import HEARTBEAT_EVERY_S
from tests.netkit import free_port, wait_port

NODE = "node-live"
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

if not CHROMIUM.exists():
    if os.environ.get("SHOWROOM_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)", pytrace=False)
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        pytest.fail("mosquitto is not installed")
    port = free_port()
    conf = tmp_path_factory.mktemp("mosquitto") / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n", encoding="utf-8")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def world_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("dash_live")
    return world.build_db(base / "aggregator.sqlite"), world.write_users(base / "users.yaml")


@pytest.fixture(scope="module")
def aggregator(
    broker: str, world_db: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    log = (tmp_path_factory.mktemp("agg_log") / "aggregator.log").open("wb")
    cmd = [
        str(SHOWROOM),
        "aggregator",
        "run",
        "--broker",
        broker,
        "--db",
        str(world_db[0]),
        "--writer",
        "thread",
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        _stop(proc)
        log.close()


def _node_seen(db: Path, online: bool) -> bool:
    with Queries.open(db) as q:
        nodes = {n.node_id: n for n in q.nodes(["sh-01"], datetime.now(UTC))}
    node = nodes.get(NODE)
    return node is not None and node.online is online and node.last_heartbeat_at is not None


def _wait(cond: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"{what} not within {timeout_s} s"
        time.sleep(0.5)


def _node_alert(page: Any) -> str | None:
    texts = page.locator('[data-testid="stAlert"]').all_inner_texts()
    return next((a for a in texts if f"sh-01 / {NODE}" in a), None)


def test_a_killed_node_turns_stale_within_one_heartbeat(
    broker: str, aggregator: None, world_db: tuple[Path, Path], tmp_path: Path
) -> None:
    db, users = world_db
    node = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "live_node.py"),
            "--broker",
            broker,
            "--store",
            "sh-01",
            "--node",
            NODE,
            "--outbox",
            str(tmp_path / "outbox.sqlite"),
            "--every",
            "2",
        ],
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
    )
    try:
        _wait(lambda: _node_seen(db, online=True), 30, "the live node's heartbeat in the aggregator")
        with dashboard_server(db, users, tmp_path / "dashboard.log") as url, sync_api.sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1440, "height": 1600})
            log_in(page, url, "tech", world.PASSWORD)
            page.get_by_text("Needs attention first").wait_for()
            assert _node_alert(page) is None, "a reporting node needs no attention"

            node.send_signal(signal.SIGKILL)
            node.wait()
            killed = time.monotonic()
            # No reload: the page refreshes itself.
            page.wait_for_function(
                f"""() => Array.from(document.querySelectorAll('[data-testid="stAlert"]'))
                    .some(a => a.innerText.includes('sh-01 / {NODE}'))""",
                timeout=int(HEARTBEAT_EVERY_S * 1000),
            )
            took_s = time.monotonic() - killed
            alert = _node_alert(page)
            assert alert is not None
            print(f"killed node shown stale after {took_s:.1f} s: {alert!r}")
            assert "offline, last heartbeat" in alert and " s ago" in alert
            assert "cameras cam-live: last state" in alert
            assert took_s < HEARTBEAT_EVERY_S
            page.screenshot(path=str(tmp_path / "installer_live.png"), full_page=True)
            browser.close()
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
