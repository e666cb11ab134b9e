"""`showroom hardware commission` as the installer runs it: a real Mosquitto with accounts and ACLs, the real
aggregator on SQLite, the PETS09 clip as the camera, the real detector model."""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from broker_kit import REPO, SHOWROOM, StoreBroker, running_aggregator, store_broker
from paho.mqtt.enums import CallbackAPIVersion

from tests.netkit import free_port

PETS_VIDEO = REPO.parent / "shared" / "data" / "pets09_s2l1" / "vtest_480x360.avi"
STORE, NODE = "pets09", "view-1"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreBroker]:
    with store_broker(tmp_path_factory.mktemp("broker"), STORE, NODE) as running:
        yield running


@pytest.fixture(scope="module")
def aggregator_db(broker: StoreBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    db = tmp_path_factory.mktemp("aggregator") / "agg.sqlite"
    with running_aggregator(broker, db):
        yield db


def node_config(broker: StoreBroker, *extra_cameras: dict[str, Any]) -> dict[str, Any]:
    """The PETS09 example node on `broker` with the node's account (password from $NODE_PASSWORD)."""
    data: dict[str, Any] = yaml.safe_load((REPO / "examples" / "pets09.yaml").read_text())
    data["cameras"][0]["source"] = str(PETS_VIDEO)
    data["cameras"][0]["fps"] = 5  # headroom for the inference budget on a busy two-core test machine
    data["broker"] = {"url": broker.url, "username": broker.node.username, "password_env": "NODE_PASSWORD"}
    for extra in extra_cameras:
        camera = copy.deepcopy(data["cameras"][0])
        camera.update(extra)
        data["cameras"].append(camera)
    return data


def commission(
    tmp_path: Path, config: dict[str, Any], *args: str, password: str = ""
) -> tuple[int, list[dict[str, Any]], str]:
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "NODE_PASSWORD": password, "SHOWROOM_STATE_DIR": str(tmp_path / "state")}
    cmd = [*SHOWROOM, "--log-level", "warning", "hardware", "commission", "--config", str(path), "--json"]
    cmd += args
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    print(f"commission took {time.monotonic() - started:.1f} s (exit {proc.returncode})")
    assert "Traceback" not in proc.stderr, proc.stderr
    items = json.loads(proc.stdout)
    for item in items:
        print(item)
    return proc.returncode, items, proc.stderr


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


def stored_rows(db: Path) -> tuple[int, int]:
    """(raw events stored, payloads quarantined) in the aggregator's database."""
    with sqlite3.connect(db) as conn:
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    return int(events), int(quarantined)


def test_healthy_node_passes_every_item_and_the_aggregator_stores_nothing(
    broker: StoreBroker, aggregator_db: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.html"
    rc, items, _ = commission(
        tmp_path,
        node_config(broker),
        "--seconds",
        "3",
        "--report",
        str(report),
        password=broker.node.password,
    )

    assert rc == 0, [i for i in items if not i["ok"]]
    assert all(i["ok"] for i in items)
    assert all({"name", "ok", "value"} <= set(i) for i in items)
    found = by_name(items)
    expected = {"config", "calibration:view-1", "camera:view-1", "model:detector", "inference", "broker"}
    assert expected | {"acl:other-store", "round-trip", "clock", "disk"} <= set(found)
    assert 4.5 <= found["camera:view-1"]["value"] <= 5.5  # the clip is paced at the camera's 5 fps
    assert found["calibration:view-1"]["value"] < 0.15
    assert found["acl:other-store"]["value"] == "refused"
    assert "Not authorized" in found["acl:other-store"]["detail"]
    assert abs(found["clock"]["value"]) < 1.0
    assert found["inference"]["value"] < 1000 / 5

    page = report.read_text()
    assert STORE in page and NODE in page and "PASS" in page and "FAIL" not in page
    assert "http://" not in page and "https://" not in page and "<script" not in page

    # The test message was answered, not stored nor quarantined.
    assert stored_rows(aggregator_db) == (0, 0)


def test_broken_cameras_fail_their_own_items_and_the_others_are_still_measured(
    broker: StoreBroker, aggregator_db: Path, tmp_path: Path
) -> None:
    closed_port = free_port()
    config = node_config(
        broker,
        {"id": "missing-file", "source": str(tmp_path / "no-such-clip.avi"), "fps": 1},
        {"id": "dead-rtsp", "source": f"rtsp://127.0.0.1:{closed_port}/live", "fps": 1},
    )
    rc, items, _ = commission(tmp_path, config, "--seconds", "3", password=broker.node.password)

    assert rc == 1
    found = by_name(items)
    assert not found["camera:missing-file"]["ok"]
    assert "does not exist" in found["camera:missing-file"]["reason"]
    assert not found["camera:dead-rtsp"]["ok"]
    assert "cannot open" in found["camera:dead-rtsp"]["reason"]
    assert found["camera:view-1"]["ok"] and found["camera:view-1"]["value"] > 4.5
    failed = {name for name, item in found.items() if not item["ok"]}
    assert failed == {"camera:missing-file", "camera:dead-rtsp"}


def test_wrong_password_fails_the_broker_item_with_the_reason(broker: StoreBroker, tmp_path: Path) -> None:
    rc, items, _ = commission(tmp_path, node_config(broker), "--seconds", "1", password="wrong")

    assert rc == 1
    found = by_name(items)
    assert not found["broker"]["ok"]
    assert "refused user node-pets09-view-1" in found["broker"]["reason"]
    assert "Not authorized" in found["broker"]["reason"]
    for dependent in ("acl:other-store", "round-trip", "clock"):
        assert not found[dependent]["ok"] and "not checked" in found[dependent]["reason"]
    assert found["camera:view-1"]["ok"]


def test_unreachable_broker_and_missing_password_say_so(broker: StoreBroker, tmp_path: Path) -> None:
    config = node_config(broker)
    config["broker"]["url"] = f"mqtt://127.0.0.1:{free_port()}"
    rc, items, _ = commission(tmp_path, config, "--seconds", "1", password=broker.node.password)
    assert rc == 1
    assert "connection refused" in by_name(items)["broker"]["reason"]

    config = node_config(broker)
    config["broker"]["password_env"] = "NO_SUCH_PASSWORD_VARIABLE"
    rc, items, _ = commission(tmp_path, config, "--seconds", "1")
    assert rc == 1
    assert "$NO_SUCH_PASSWORD_VARIABLE is not set" in by_name(items)["broker"]["reason"]


def test_invalid_config_is_one_failed_item_without_a_traceback(tmp_path: Path) -> None:
    rc, items, _ = commission(tmp_path, {"store_id": "Bad Id"}, "--seconds", "1")
    assert rc == 1
    assert [i["name"] for i in items] == ["config"]
    assert "store_id" in items[0]["reason"] and "node_id" in items[0]["reason"]


def test_the_aggregator_ignores_malformed_commission_messages_and_replies(
    broker: StoreBroker, aggregator_db: Path
) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="t-node", protocol=paho.MQTTv5)
    client.username_pw_set(broker.node.username, broker.node.password)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        base = f"showroom/v1/{STORE}/{NODE}"
        for topic, payload in (
            (f"{base}/commission", b"not json"),
            (f"{base}/commission", b'{"nonce": 5}'),
            (f"{base}/commission/reply", b'{"nonce": "x", "received_at": "2026-01-01T00:00:00Z"}'),
        ):
            client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()
    time.sleep(1.0)
    assert stored_rows(aggregator_db) == (0, 0)
