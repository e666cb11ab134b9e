"""The MQTT publisher against a real Mosquitto: QoS 1 drain, retained status, outages, credentials."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from node_testkit import T0, Mqtt311OnlyProxy, Recorder, make_events, make_tls_files, running_mosquitto
from paho.mqtt.publish import single

from edge.config import BrokerConfig
from edge.events import EventStamper, parse_event
from edge.node.mqtt import MqttPublisher
from edge.node.outbox import Outbox


def publisher(broker_url: str, outbox: Outbox, **broker: object) -> MqttPublisher:
    config = BrokerConfig.model_validate({"url": broker_url, "keepalive_s": 5, **broker})
    return MqttPublisher(config, outbox, store_id="store-a", node_id="node-1", resend_after_s=5)


def event_ids(payloads: list[bytes]) -> list[str]:
    return [json.loads(p)["event_id"] for p in payloads]


def test_outbox_is_drained_with_retained_online_then_offline_status(tmp_path: Path) -> None:
    with running_mosquitto(tmp_path) as broker:
        recorder = Recorder(broker.port)
        outbox = Outbox(tmp_path / "o.sqlite", 10_000_000)
        events = make_events(EventStamper("store-a", "node-1", next_seq=outbox.next_seq), 50, heat_every=10)
        outbox.extend(events)  # stored before the publisher even exists
        pub = publisher(broker.url, outbox)
        pub.start()
        try:
            assert pub.wait_connected(10)
            assert pub.wait_drained(15), pub.stats()
            assert recorder.wait_for(
                lambda: len(recorder.payloads("events") + recorder.payloads("heat")) >= 50
            )
            received = [parse_event(p) for p in recorder.payloads("events") + recorder.payloads("heat")]
            assert sorted(e.event_id for e in received) == sorted(e.event_id for e in events)
            assert [e.seq for e in received if e.kind == "events"] == sorted(
                e.seq for e in events if e.kind == "events"
            )
            assert json.loads(recorder.payloads("status")[0])["status"] == "online"
            assert pub.stats().protocol == "5"
        finally:
            pub.stop()
            recorder.close()
        assert outbox.depth() == 0
        late = Recorder(broker.port, client_id="late")  # a newcomer gets the retained status
        assert late.wait_for(lambda: late.payloads("status"))
        status = parse_event(late.payloads("status")[-1])
        assert status.status == "offline"  # type: ignore[attr-defined]
        assert status.seq == 49  # status carries the latest seq without taking one
        late.close()
        outbox.close()


def test_broker_outage_loses_nothing_and_each_event_arrives_once_by_id(tmp_path: Path) -> None:
    with running_mosquitto(tmp_path) as broker:
        recorder = Recorder(broker.port)
        assert recorder.wait_for(lambda: recorder.client.is_connected())
        time.sleep(0.3)
        outbox = Outbox(tmp_path / "o.sqlite", 10_000_000)
        stamper = EventStamper("store-a", "node-1", next_seq=outbox.next_seq)
        pub = publisher(broker.url, outbox)
        pub.start()
        produced: list[str] = []
        stop = threading.Event()

        def produce() -> None:
            i = 0
            while not stop.is_set():
                batch = make_events(stamper, 5, start=T0 + timedelta(seconds=5 * i))
                outbox.extend(batch)
                produced.extend(e.event_id for e in batch)
                pub.notify()
                i += 1
                time.sleep(0.05)

        producer = threading.Thread(target=produce)
        producer.start()
        try:
            assert pub.wait_connected(10)
            time.sleep(1.0)
            broker.stop()  # mid-run; the producer keeps writing to the outbox
            time.sleep(2.0)
            assert not pub.connected
            assert outbox.depth() > 0  # held durably while the broker is away
            broker.start()
            assert pub.wait_connected(30), "publisher did not reconnect"
            time.sleep(1.0)
            stop.set()
            producer.join()
            assert pub.wait_drained(30), pub.stats()
            assert recorder.wait_for(lambda: set(produced) <= set(event_ids(recorder.payloads("events"))), 30)
        finally:
            stop.set()
            pub.stop()
            recorder.close()
        got = event_ids(recorder.payloads("events"))
        assert set(got) == set(produced), f"{len(set(produced) - set(got))} lost"
        duplicates = len(got) - len(set(got))
        print(f"outage: {len(produced)} events, {duplicates} QoS 1 re-deliveries, stats {pub.stats()}")
        assert pub.stats().disconnects >= 1
        assert outbox.depth() == 0
        outbox.close()


def test_credentials_from_the_environment_and_wrong_password_keeps_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_mosquitto(tmp_path, password=("node-1", "s3cret")) as broker:
        outbox = Outbox(tmp_path / "o.sqlite", 10_000_000)
        outbox.extend(make_events(EventStamper("store-a", "node-1"), 3))
        monkeypatch.setenv("NODE_MQTT_PW", "wrong")
        bad = publisher(broker.url, outbox, username="node-1", password_env="NODE_MQTT_PW")
        bad.start()
        assert not bad.wait_connected(3)
        bad.stop()
        assert outbox.depth() == 3  # nothing is deleted without an acknowledgement

        monkeypatch.setenv("NODE_MQTT_PW", "s3cret")
        good = publisher(broker.url, outbox, username="node-1", password_env="NODE_MQTT_PW")
        good.start()
        try:
            assert good.wait_connected(10)
            assert good.wait_drained(10)
        finally:
            good.stop()
        outbox.close()


def test_bad_broker_url_is_a_config_error(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", 10_000) as outbox, pytest.raises(ValueError, match="url"):
        MqttPublisher(BrokerConfig(), outbox, store_id="store-a", node_id="node-1", url="http://x:1")


def test_tls_settings_are_applied_and_fail_against_a_plain_listener(tmp_path: Path) -> None:
    with running_mosquitto(tmp_path) as broker:
        outbox = Outbox(tmp_path / "o.sqlite", 10_000_000)
        outbox.extend(make_events(EventStamper("store-a", "node-1"), 2))
        pub = publisher(f"mqtts://127.0.0.1:{broker.port}", outbox)
        pub.start()
        assert not pub.wait_connected(3)  # a TLS handshake against a plain listener never connects
        pub.stop()
        assert outbox.depth() == 2
        outbox.close()


def test_falls_back_to_mqtt_311_when_the_broker_refuses_version_5(tmp_path: Path) -> None:
    with running_mosquitto(tmp_path) as broker:
        proxy = Mqtt311OnlyProxy(broker.port)
        recorder = Recorder(broker.port)
        assert recorder.wait_for(lambda: recorder.client.is_connected())
        outbox = Outbox(tmp_path / "o.sqlite", 10_000_000)
        events = make_events(EventStamper("store-a", "node-1"), 5)
        outbox.extend(events)
        pub = publisher(f"mqtt://127.0.0.1:{proxy.port}", outbox)
        pub.start()
        try:
            assert pub.wait_connected(15), pub.stats()
            assert pub.wait_drained(10)
            assert pub.stats().protocol == "3.1.1"
            assert proxy.refused_v5 >= 1 and proxy.passed >= 1
            assert recorder.wait_for(lambda: len(recorder.payloads("events")) == 5)
        finally:
            pub.stop()
            recorder.close()
            proxy.close()
        assert sorted(event_ids(recorder.payloads("events"))) == sorted(e.event_id for e in events)
        outbox.close()


def test_tls_with_the_provisioned_ca_connects_and_delivers(tmp_path: Path) -> None:
    ca, cert, key = make_tls_files(tmp_path)
    with running_mosquitto(tmp_path, tls=(ca, cert, key)) as broker:
        outbox = Outbox(tmp_path / "o.sqlite", 10_000_000)
        outbox.extend(make_events(EventStamper("store-a", "node-1"), 3))
        pub = publisher(f"mqtts://127.0.0.1:{broker.port}", outbox, tls={"ca_file": str(ca)})
        pub.start()
        try:
            assert pub.wait_connected(10), pub.stats()
            assert pub.wait_drained(10)
        finally:
            pub.stop()
        outbox.close()


def test_extra_subscriptions_and_control_messages_survive_the_fall_back_and_a_broker_restart(
    tmp_path: Path,
) -> None:
    """What rides on the publisher's connection besides the outbox (the hand-over between boxes): its
    subscriptions are made again on every connect, after the MQTT 3.1.1 fall-back and after a restart."""
    with running_mosquitto(tmp_path) as broker:
        proxy = Mqtt311OnlyProxy(broker.port)
        outbox = Outbox(tmp_path / "o.sqlite", 10_000_000)
        pub = publisher(f"mqtt://127.0.0.1:{proxy.port}", outbox)
        got: list[tuple[str, bytes]] = []
        arrived = threading.Condition()

        def handler(topic_name: str, payload: bytes) -> None:
            with arrived:
                got.append((topic_name, payload))
                arrived.notify_all()

        def neighbour_says(payload: bytes) -> None:
            single("showroom/v1/store-a/node-2/handover", payload, qos=1, port=broker.port)
            with arrived:
                assert arrived.wait_for(lambda: payload in [p for _t, p in got], 10), got

        pub.subscribe(["showroom/v1/store-a/node-2/handover"], handler)
        pub.start()
        try:
            assert pub.wait_connected(15) and pub.wait_subscribed(10), pub.stats()
            assert pub.stats().protocol == "3.1.1"
            neighbour_says(b"before")
            mid = pub.publish_control("showroom/v1/store-a/node-1/handover", b"mine")
            assert mid is not None
            assert wait(lambda: pub.control_acknowledged([mid]))
            broker.stop()
            assert wait(lambda: not pub.connected)
            assert pub.publish_control("showroom/v1/store-a/node-1/handover", b"lost") is None
            broker.start()
            assert pub.wait_connected(30) and pub.wait_subscribed(10), pub.stats()
            neighbour_says(b"after")
            mid = pub.publish_control("showroom/v1/store-a/node-1/handover", b"mine again")
            assert mid is not None and wait(lambda: pub.control_acknowledged([mid]))
            stats = pub.stats()
            assert (stats.connects, stats.control_sent, stats.control_acked) == (2, 2, 2), stats
            assert got == [("showroom/v1/store-a/node-2/handover", p) for p in (b"before", b"after")]
        finally:
            pub.stop()
            proxy.close()
        outbox.close()


def wait(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
