"""The MQTT side of the aggregator: subscribe to every store's topics and feed the ingester in batches.

MQTT 5 with a shared subscription (`$share/{group}/showroom/v1/+/+/+`), so several aggregator processes
split the load; a plain subscription on MQTT 3.1.1. With `protocol="auto"` (the CLI default) MQTT 5 is
tried first and a broker that refuses it (a CONNACK "unsupported/unacceptable protocol version", or the
connection closed before any CONNACK three times in a row: the node publisher's rule,
`edge.mqtt_common`) is reconnected with MQTT 3.1.1 and a plain subscription, and the choice
kept. QoS 1 with a persistent session, so a restarted aggregator gets what the broker queued meanwhile.
The network thread only enqueues; the dispatching thread hands batches to a writer
(`aggregator.writer`) that validates and stores each in one transaction: in a child process that owns the
database (`ProcessWriter`, what `showroom aggregator run` uses, so receiving and storing run on two cores)
or on the dispatching thread itself (`InlineWriter`, what passing an `Ingestor` gives). The inbox is bounded
by the broker (acknowledgement after commit), not by dropping.

Acknowledgement after commit (default): a QoS 1 message is acknowledged to the broker only once its batch
is committed (or quarantined), so a crash between receipt and storage makes the broker deliver it again
instead of losing it; the event_id makes that redelivery harmless. On MQTT 5 the aggregator allows
`receive_maximum` unacknowledged messages; an MQTT 3.1.1 broker applies its own in-flight limit (Mosquitto's
`max_inflight_messages`, 20 by default), which then bounds the batch size.

Sessions and reconnection: a fixed client id with `clean_start=False` (MQTT 5, session expiry
`session_expiry_s`) or `clean_session=False` (3.1.1), so the broker keeps the aggregator's subscription
and queues its messages while it is away or restarting; after a disconnect it reconnects within a few
seconds (`edge.mqtt_common.arm_reconnect`: a random 0.5-3 s wait, never longer).

Gaps and replay: each batch's result carries the open `seq` gaps of the nodes it touched
(`aggregator.gaps`); `ReplayScheduler` decides when to ask, and the request goes to the node's `.../replay`
topic. The node's answer (`.../replay/reply`, a second subscription) goes to the writer with the batch,
which records what the node cannot send again; the payloads it does send again arrive as usual and are
stored once. Requests echoed back through the subscription are ignored.

Commissioning: a message on a node's `commission` topic (`edge.events.CONTROL_KINDS`) is a test of the
path, not an event: the aggregator answers it on `.../commission/reply` (QoS 1) with the test's nonce and
its own receipt time, and neither stores nor quarantines it. Replies that come back through the
subscription are ignored the same way. Control messages keep their place in the acknowledgement order.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from aggregator.gaps import ReplayScheduler
from aggregator.ingest import BatchResult, Ingestor
from aggregator.writer import BatchWriter, InlineWriter, Raw
from edge.events import (
    commission_reply_topic,
    control_topic,
    replay_reply_subscription,
    replay_topic,
    subscription,
)
from edge.mqtt_common import CLOSES_BEFORE_CONNACK_TO_FALL_BACK, BrokerAddress, arm_reconnect, refuses_mqtt5

log = logging.getLogger(__name__)

Protocol = Literal["auto", "5", "3.1.1"]


class MqttIngestService:
    """Subscribes, queues and ingests until `stop()`.

    `writer` stores the batches: an `Ingestor` (run on the dispatching thread) or any `BatchWriter`, such
    as a `ProcessWriter`. The service closes it when `run` returns.
    """

    def __init__(
        self,
        writer: Ingestor | BatchWriter,
        broker_url: str,
        *,
        protocol: Protocol = "auto",
        share_group: str | None = "showroom-aggregator",
        client_id: str = "showroom-aggregator",
        username: str | None = None,
        password: str | None = None,
        batch_max: int = 5000,
        session_expiry_s: int = 7 * 86_400,
        ack_after_commit: bool = True,
        receive_maximum: int = 20_000,
        replay: ReplayScheduler | None = None,
    ) -> None:
        self.writer: BatchWriter = InlineWriter(writer) if isinstance(writer, Ingestor) else writer
        self.address = BrokerAddress.parse(broker_url)
        self.auto_protocol = protocol == "auto"
        self.protocol: Literal["5", "3.1.1"] = "3.1.1" if protocol == "3.1.1" else "5"
        """The protocol in use: "5" until a broker refuses it under `auto`."""
        self.share_group = share_group
        self.topic_filter = subscription(share_group if self.protocol == "5" else None)
        self.replay_filter = replay_reply_subscription(share_group if self.protocol == "5" else None)
        self.replay = replay if replay is not None else ReplayScheduler()
        """When to ask nodes for their open gaps (`aggregator.gaps`)."""
        self.replay_requests = 0
        self.client_id = client_id
        self.username = username
        self.password = password
        self.batch_max = batch_max
        self.session_expiry_s = session_expiry_s
        self.ack_after_commit = ack_after_commit
        self.receive_maximum = receive_maximum
        self.received = 0
        self.commissions_answered = 0
        self.commissions_rejected = 0
        """Commissioning test messages answered, and those too malformed to answer (logged)."""
        self.totals = BatchResult()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        # The network thread only appends (topic bytes, payload, receipt time, mid, qos); the writer pops.
        # Bounded by the broker: at most `receive_maximum` (MQTT 5) or the broker's in-flight limit
        # (3.1.1) messages are unacknowledged, and they are acknowledged only once stored.
        self._inbox: deque[tuple[bytes, bytes, float, int, int]] = deque()
        # Batches handed to the writer and not yet committed: their (mid, qos) to acknowledge, in order.
        self._in_flight: deque[list[tuple[int, int]]] = deque()
        # Committed messages whose acknowledgement is not sent yet (see `_send_acks`).
        self._ack_ready: deque[tuple[int, int]] = deque()
        self._ack_lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stop = threading.Event()
        self._fall_back = threading.Event()
        self._got_connack = False
        self._closed_before_connack = 0
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        v5 = self.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else False,
            manual_ack=self.ack_after_commit,
        )
        if self.username:
            client.username_pw_set(self.username, self.password)
        if self.address.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_connect_fail = self._on_connect_fail
        arm_reconnect(client)
        return client

    # -- paho callbacks (network thread) --------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self._got_connack = True
        if reason.is_failure:
            if self.auto_protocol and self.protocol == "5" and refuses_mqtt5(reason):
                self._fall_back.set()
            log.error("broker refused the connection: %s", reason)
            return
        self._closed_before_connack = 0
        log.info(
            "connected to %s:%d (MQTT %s), subscribing to %s",
            self.address.host,
            self.address.port,
            self.protocol,
            self.topic_filter,
        )
        self.connected.set()
        client.subscribe([(self.topic_filter, 1), (self.replay_filter, 1)])

    def _on_connect_fail(self, client: mqtt.Client, _u: Any) -> None:
        log.warning("cannot reach the broker; retrying in %.1f s", arm_reconnect(client))

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: Any, _props: Any) -> None:
        codes = list(reasons)
        if any(getattr(r, "is_failure", False) for r in codes):
            log.error("subscription to %s refused: %s", self.topic_filter, codes)
            return
        self.subscribed.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if not self._got_connack and self.auto_protocol and self.protocol == "5":
            # Closed before any CONNACK: how some MQTT 3.1.1-only brokers answer a version 5 CONNECT.
            self._closed_before_connack += 1
            if self._closed_before_connack >= CLOSES_BEFORE_CONNACK_TO_FALL_BACK:
                self._fall_back.set()
        self._got_connack = False
        self.connected.clear()
        self.subscribed.clear()
        if not self._stop.is_set():
            delay = arm_reconnect(_c)
            log.warning("disconnected from the broker (%s); reconnecting in %.1f s", reason, delay)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        # Kept minimal: this runs on the network thread for every message.
        self._inbox.append((msg._topic, bytes(msg.payload), time.time(), msg.mid, msg.qos))
        if self._ack_ready:
            self._send_acks(wait=False)
        if not self._wakeup.is_set():
            self._wakeup.set()

    # -- running --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect and start the network thread (non-blocking); call `run_writer` or `run` next."""
        if self.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.session_expiry_s
            props.ReceiveMaximum = self.receive_maximum
            self._client.connect_async(
                self.address.host, self.address.port, keepalive=30, clean_start=False, properties=props
            )
        else:
            self._client.connect_async(self.address.host, self.address.port, keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        self._stop.set()

    def run(self, stats_every_s: float = 10.0) -> BatchResult:
        """Connect, then ingest until `stop()`; drains what was queued before returning."""
        self.start()
        try:
            self.run_writer(stats_every_s)
            self._drain()
        finally:
            self._client.disconnect()
            self._client.loop_stop()
            self.writer.close()
        return self.totals

    def run_writer(self, stats_every_s: float = 10.0) -> None:
        last_stats = time.monotonic()
        next_replay = time.monotonic() + 1.0
        while not self._stop.is_set():
            if time.monotonic() >= next_replay:
                next_replay = time.monotonic() + 1.0
                self._ask_replays()
            if self._fall_back.is_set():
                self._use_mqtt311()
            batch = self._take(timeout_s=0.0 if self._in_flight else 0.2)
            if not batch and self._ack_ready:
                self._send_acks(wait=True)  # nothing arriving: the network thread will not send them
            if batch:
                self._submit(batch)
            elif self._in_flight:
                self._settle(timeout_s=0.02)
            else:
                self.writer.idle()
            if time.monotonic() - last_stats >= stats_every_s:
                last_stats = time.monotonic()
                t = self.totals
                log.info(
                    "received %d, stored %d, duplicates %d, quarantined %d, queued %d",
                    self.received,
                    t.stored,
                    t.duplicates,
                    t.quarantined,
                    len(self._inbox),
                )

    def _use_mqtt311(self) -> None:
        """The broker refused MQTT 5: a new MQTT 3.1.1 client with a plain subscription (nothing was
        received on the refused one, so no acknowledgement is owed to it)."""
        self._fall_back.clear()
        log.warning(
            "broker %s:%d does not speak MQTT 5; falling back to MQTT 3.1.1 with a plain subscription",
            self.address.host,
            self.address.port,
        )
        old = self._client
        old.loop_stop()
        old.disconnect()
        self.protocol = "3.1.1"
        self.topic_filter = subscription(None)
        self.replay_filter = replay_reply_subscription(None)
        self._client = self._make_client()
        self.start()

    def _take(self, timeout_s: float) -> list[tuple[bytes, bytes, float, int, int]]:
        if not self._inbox and timeout_s > 0:
            self._wakeup.clear()
            if not self._inbox:
                self._wakeup.wait(timeout_s)
        inbox = self._inbox
        return [inbox.popleft() for _ in range(min(len(inbox), self.batch_max))]

    def _drain(self) -> None:
        while batch := self._take(timeout_s=0.0):
            self._submit(batch)
        while self._in_flight:
            self._settle(timeout_s=None)
        self._send_acks(wait=True)

    def _submit(self, batch: list[tuple[bytes, bytes, float, int, int]]) -> None:
        """Hand a batch to the writer; with the writer's `depth` batches in flight, wait for the oldest.

        Control messages (commissioning) are answered here and not handed on; their acknowledgements stay
        in the batch's, so the broker still gets them in receipt order."""
        raw: list[Raw] = []
        for topic, payload, received, _, _ in batch:
            if topic.endswith((b"/commission", b"/reply", b"/replay")) and self._answer_control(
                topic, payload, received
            ):
                continue
            raw.append((topic, payload, received))
        acks = [(mid, qos) for _, _, _, mid, qos in batch]
        self.received += len(batch)
        if not raw and not self._in_flight:
            # Only control messages and nothing committed ahead of them: acknowledge them at once.
            if self.ack_after_commit:
                self._ack_ready.extend((mid, qos) for mid, qos in acks if qos > 0)
            return
        self.writer.submit(raw)
        self._in_flight.append(acks)
        if len(self._in_flight) >= self.writer.depth:
            self._settle(timeout_s=None)

    def _answer_control(self, topic_bytes: bytes, payload: bytes, received: float) -> bool:
        """Answer a commissioning message (or ignore a reply); False when the topic is no control topic."""
        parsed = control_topic(topic_bytes.decode("utf-8", errors="replace"))
        if parsed is None:
            return False
        store_id, node_id, kind = parsed
        if kind == "replay/reply":
            return False  # the node's answer: the writer records it
        if kind != "commission":
            return True  # our own answer or request, come back through the subscription
        try:
            request = json.loads(payload)
            nonce = request["nonce"]
            if not isinstance(nonce, str) or not 0 < len(nonce) <= 128:
                raise ValueError(f"nonce must be a string of 1 to 128 characters, got {nonce!r}")
        except (ValueError, KeyError, TypeError) as exc:
            self.commissions_rejected += 1
            log.warning("commissioning message from %s/%s not answered: %s", store_id, node_id, exc)
            return True
        received_at = datetime.fromtimestamp(received, UTC).isoformat(timespec="milliseconds")
        reply = json.dumps({"nonce": nonce, "received_at": received_at.replace("+00:00", "Z")})
        info = self._client.publish(commission_reply_topic(store_id, node_id), reply, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.warning("cannot answer the commissioning message of %s/%s: %s", store_id, node_id, info.rc)
        else:
            self.commissions_answered += 1
            log.info("answered the commissioning message of %s/%s", store_id, node_id)
        return True

    def _settle(self, timeout_s: float | None) -> None:
        """Take the oldest batch's result (waiting up to `timeout_s`) and acknowledge its messages."""
        result = self.writer.result(timeout_s)
        if result is None:
            return
        acks = self._in_flight.popleft()
        self.totals.add(result)
        if result.gaps:
            self.replay.observe(result.gaps, time.monotonic())
        if self.ack_after_commit:
            # Committed (stored or quarantined): now the broker may forget them.
            self._ack_ready.extend((mid, qos) for mid, qos in acks if qos > 0)

    def _ask_replays(self) -> None:
        """Send the replay requests that are due (QoS 1, to each node's own `.../replay` topic)."""
        if not self.connected.is_set():
            return
        for store_id, node_id, request in self.replay.due(time.monotonic()):
            info = self._client.publish(replay_topic(store_id, node_id), request.to_json(), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                log.warning("cannot ask %s/%s for a replay: %s", store_id, node_id, info.rc)
                continue
            self.replay_requests += 1
            log.info(
                "asked %s/%s to send seq %d..%d again", store_id, node_id, request.from_seq, request.to_seq
            )

    def _send_acks(self, *, wait: bool) -> None:
        """Acknowledge the committed messages, in receipt order (as MQTT requires).

        The network thread sends them as it receives the next message (`wait=False`: unless the
        dispatching thread is at it), and the dispatching thread when nothing arrives: thousands of
        acknowledgements sent from the dispatching thread while the network thread receives would hand
        the GIL back and forth between the two at every socket write."""
        if not self._ack_lock.acquire(blocking=wait):
            return
        try:
            ready, ack = self._ack_ready, self._client.ack
            while ready:
                mid, qos = ready.popleft()
                ack(mid, qos)
        finally:
            self._ack_lock.release()
