"""The publisher answers the aggregator's replay requests from the outbox's history, on its own topics."""

from __future__ import annotations

import json
import time
from pathlib import Path

import paho.mqtt.client as paho
from node_testkit import Recorder, make_events, running_mosquitto
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import BrokerConfig
from edge.events import EventStamper, parse_event
from edge.mqtt_common import ReplayReply, ReplayRequest
from edge.node.mqtt import MqttPublisher
from edge.node.outbox import Outbox


def test_a_replay_request_is_answered_with_the_history_and_what_is_not_there(tmp_path: Path) -> None:
    with (
        running_mosquitto(tmp_path) as broker,
        Outbox(tmp_path / "o.sqlite", 10_000_000, history_s=3600) as outbox,
    ):
        events = make_events(EventStamper("store-a", "node-1"), 5)
        outbox.extend(events)
        publisher = MqttPublisher(BrokerConfig(url=broker.url), outbox, store_id="store-a", node_id="node-1")
        publisher.start()
        assert publisher.wait_connected(10) and publisher.wait_drained(10)
        recorder = Recorder(broker.port, "showroom/v1/store-a/node-1/#", client_id="aggregator-spy")
        assert recorder.wait_for(lambda: recorder.client.is_connected())
        time.sleep(0.5)  # its subscription in place before anything is asked
        asker = paho.Client(CallbackAPIVersion.VERSION2, client_id="asker")
        asker.connect("127.0.0.1", broker.port)
        asker.loop_start()
        topic = "showroom/v1/store-a/node-1/replay"
        asker.publish(topic, b"{not json", qos=1).wait_for_publish(5)
        asker.publish(topic, ReplayRequest("r1", 2, 9).to_json(), qos=1).wait_for_publish(5)
        assert recorder.wait_for(lambda: recorder.payloads("reply"))
        reply = ReplayReply.parse(recorder.payloads("reply")[0])
        assert (reply.request_id, reply.replayed, reply.unavailable) == (
            "r1",
            3,
            ((5, 9, "beyond the node's last seq"),),
        )
        again = [parse_event(p) for p in recorder.payloads("events")]
        assert [e.seq for e in again] == [2, 3, 4] and again == events[2:]  # the same payloads
        assert publisher.stats().replays_refused == 1 and publisher.stats().replays == 1
        assert outbox.depth() == 0  # replaying sent nothing back into the unsent queue
        asker.loop_stop()
        recorder.close()
        publisher.stop(drain_timeout_s=1)
    assert json.loads(reply.to_json())["unavailable"] == [[5, 9, "beyond the node's last seq"]]
