"""The MQTT side of the aggregator: subscribe to every store's topics and feed the ingester in batches.

MQTT 5 with a shared subscription (`$share/{group}/showroom/v1/+/+/+`), so several aggregator processes
split the load; a plain subscription on MQTT 3.1.1. QoS 1 with a persistent session, so a restarted
aggregator gets what the broker queued meanwhile. The network thread only enqueues; one writer thread
validates and stores in batches (one transaction each), which is what makes 10,000+ events/s possible.
A full queue blocks the network thread, which pushes back on the broker instead of dropping.

Acknowledgement after commit (default): a QoS 1 message is acknowledged to the broker only once its batch
is committed (or quarantined), so a crash between receipt and storage makes the broker deliver it again
instead of losing it; the event_id makes that redelivery harmless. On MQTT 5 the aggregator allows
`receive_maximum` unacknowledged messages; an MQTT 3.1.1 broker applies its own in-flight limit (Mosquitto's
`max_inflight_messages`, 20 by default), which then bounds the batch size.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from aggregator.ingest import BatchResult, Ingestor, Message
from edge.events import subscription

log = logging.getLogger(__name__)

Protocol = Literal["5", "3.1.1"]


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """`mqtt://host[:1883]` or `mqtts://host[:8883]`."""
        parsed = urlparse(url)
        if parsed.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
        if not parsed.hostname:
            raise ValueError(f"broker URL {url!r} has no host")
        tls = parsed.scheme in ("mqtts", "ssl")
        return cls(parsed.hostname, parsed.port or (8883 if tls else 1883), tls)


class MqttIngestService:
    """Subscribes, queues and ingests until `stop()`."""

    def __init__(
        self,
        ingestor: Ingestor,
        broker_url: str,
        *,
        protocol: Protocol = "5",
        share_group: str | None = "showroom-aggregator",
        client_id: str = "showroom-aggregator",
        username: str | None = None,
        password: str | None = None,
        batch_max: int = 5000,
        session_expiry_s: int = 3600,
        ack_after_commit: bool = True,
        receive_maximum: int = 20_000,
    ) -> None:
        self.ingestor = ingestor
        self.address = BrokerAddress.parse(broker_url)
        self.protocol = protocol
        self.topic_filter = subscription(share_group if protocol == "5" else None)
        self.batch_max = batch_max
        self.session_expiry_s = session_expiry_s
        self.ack_after_commit = ack_after_commit
        self.receive_maximum = receive_maximum
        self.received = 0
        self.totals = BatchResult()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        # The network thread only appends (topic bytes, payload, receipt time, mid, qos); the writer pops.
        # Bounded by the broker: at most `receive_maximum` (MQTT 5) or the broker's in-flight limit
        # (3.1.1) messages are unacknowledged, and they are acknowledged only once stored.
        self._inbox: deque[tuple[bytes, bytes | bytearray, float, int, int]] = deque()
        self._wakeup = threading.Event()
        self._stop = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311,
            clean_session=None if protocol == "5" else False,
            manual_ack=ack_after_commit,
        )
        if username:
            self._client.username_pw_set(username, password)
        if self.address.tls:
            self._client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.reconnect_delay_set(1, 30)

    # -- paho callbacks (network thread) --------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        log.info(
            "connected to %s:%d, subscribing to %s", self.address.host, self.address.port, self.topic_filter
        )
        self.connected.set()
        client.subscribe(self.topic_filter, qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: Any, _props: Any) -> None:
        codes = list(reasons)
        if any(getattr(r, "is_failure", False) for r in codes):
            log.error("subscription to %s refused: %s", self.topic_filter, codes)
            return
        self.subscribed.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if not self._stop.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        # Kept minimal: this runs on the network thread for every message.
        self._inbox.append((msg._topic, msg.payload, time.time(), msg.mid, msg.qos))
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
            self.ingestor.refresh_pending()
        return self.totals

    def run_writer(self, stats_every_s: float = 10.0) -> None:
        last_stats = time.monotonic()
        while not self._stop.is_set():
            batch = self._take(timeout_s=0.2)
            if batch:
                self._ingest(batch)
            elif self.ingestor.pending:
                self.ingestor.refresh_pending()
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

    def _take(self, timeout_s: float) -> list[tuple[Message, int, int]]:
        if not self._inbox and timeout_s > 0:
            self._wakeup.clear()
            if not self._inbox:
                self._wakeup.wait(timeout_s)
        batch = []
        inbox = self._inbox
        for _ in range(min(len(inbox), self.batch_max)):
            topic, payload, received, mid, qos = inbox.popleft()
            text = topic.decode("utf-8", errors="replace")  # an invalid topic is quarantined as such
            body = payload if isinstance(payload, bytes) else bytes(payload)
            batch.append((Message(text, body, datetime.fromtimestamp(received, UTC), "mqtt"), mid, qos))
        return batch

    def _drain(self) -> None:
        while batch := self._take(timeout_s=0.0):
            self._ingest(batch)

    def _ingest(self, batch: list[tuple[Message, int, int]]) -> None:
        self.received += len(batch)
        self.totals.add(self.ingestor.ingest_safe([m for m, _, _ in batch]))
        if self.ack_after_commit:
            # Committed (stored or quarantined): now the broker may forget them. In receipt order.
            for _, mid, qos in batch:
                if qos > 0:
                    self._client.ack(mid, qos)
