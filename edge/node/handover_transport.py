"""The hand-over link between the boxes of one store: MQTT on the store's own `handover` topics.

Each box publishes its hand-over messages (`edge.handover_messages`) on
`showroom/v1/{store}/{node}/handover` (QoS 1) and reads its neighbours' topics, keeping what is addressed to
it. What a neighbour said while this box was away is not kept for it (offers are only worth something for
seconds; the analytics drop late ones and count them). A payload that is not a valid hand-over message is
counted and logged with the reason, never used.

Two carriers, one behaviour:

- `PublisherHandoverTransport` rides on the node's own connection (`edge.node.mqtt.MqttPublisher`). This is
  what a node runs: the installer's broker (`showroom hardware broker-config`) takes the user name as the
  client id, so a second connection under the node's account would take the publisher's place, and the
  two would keep throwing each other off.
- `HandoverTransport` opens a connection of its own (clean session) under the client id it is given. Only
  for a box without a publisher, on a broker that allows it: the simulator's boxes on a private broker.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from edge.config import BrokerConfig
from edge.events import ContractError
from edge.handover_messages import HandoverMessage, handover_topic, parse_handover
from edge.node.mqtt import MqttPublisher, log_in

log = logging.getLogger(__name__)


class HandoverLinkError(RuntimeError):
    """The broker could not be reached, or refused the subscription to a neighbour's topic."""


class HandoverChannel(Protocol):
    """What a box's hand-over link needs of its carrier."""

    rejected: int
    sent: int
    send_failures: int

    @property
    def connected(self) -> bool: ...

    def start(self, timeout_s: float = 10.0) -> None: ...

    def stop(self) -> None: ...

    def publish(self, messages: Sequence[HandoverMessage]) -> list[int]: ...

    def acknowledged(self, mids: Sequence[int]) -> bool: ...

    def received(self, timeout_s: float = 0.0) -> list[HandoverMessage]: ...


class _HandoverInbox:
    """What both carriers share: the box, its neighbours, the messages received and the counts."""

    def __init__(self, store_id: str, node_id: str, neighbours: Sequence[str]) -> None:
        self.store_id = store_id
        self.node_id = node_id
        self.neighbours = list(neighbours)
        self.topic = handover_topic(store_id, node_id)
        self.rejected = 0
        """Payloads on a neighbour's topic that were no valid hand-over message."""
        self.sent = 0
        self.send_failures = 0
        self._inbox: queue.Queue[HandoverMessage] = queue.Queue()

    @property
    def neighbour_topics(self) -> list[str]:
        return [handover_topic(self.store_id, n) for n in self.neighbours]

    def received(self, timeout_s: float = 0.0) -> list[HandoverMessage]:
        """The messages for this box received since the last call (waiting up to `timeout_s` for the
        first one)."""
        out: list[HandoverMessage] = []
        try:
            out.append(self._inbox.get(timeout=timeout_s) if timeout_s > 0 else self._inbox.get_nowait())
        except queue.Empty:
            return out
        while True:
            try:
                out.append(self._inbox.get_nowait())
            except queue.Empty:
                return out

    def _deliver(self, topic_name: str, payload: bytes) -> None:
        """A payload from a neighbour's topic (network thread): kept when it is a hand-over for this box."""
        try:
            message = parse_handover(topic_name, payload)
        except ContractError as exc:
            self.rejected += 1
            log.warning("hand-over payload rejected: %s", exc)
            return
        if message.to_node == self.node_id and message.store_id == self.store_id:
            self._inbox.put(message)

    def _not_sent(self, message: HandoverMessage, why: object) -> None:
        self.send_failures += 1
        log.warning("hand-over %s to %s not sent: %s", message.type, message.to_node, why)


class PublisherHandoverTransport(_HandoverInbox):
    """One box's hand-over link on its publisher's connection, the one connection of the node's account.

    The neighbours' topics are subscribed on every connect of the publisher (fall-back to MQTT 3.1.1 and
    reconnects included). Messages go out at QoS 1 outside the outbox: one that cannot go now (not
    connected) is counted in `send_failures` and logged, and its offer times out at the sender. `stop`
    leaves the connection to the publisher.

    Args:
        publisher: the node's publisher (started or not yet).
        neighbours: the node ids whose hand-over topics it reads.
    """

    def __init__(self, publisher: MqttPublisher, neighbours: Sequence[str]) -> None:
        super().__init__(publisher.store_id, publisher.node_id, neighbours)
        self.publisher = publisher
        publisher.subscribe(self.neighbour_topics, self._deliver)

    @property
    def connected(self) -> bool:
        return self.publisher.connected

    def start(self, timeout_s: float = 10.0) -> None:
        """Wait for the publisher's connection and its subscription to the neighbours' topics;
        `HandoverLinkError` if they do not come in time (the publisher goes on retrying)."""
        if not self.publisher.wait_connected(timeout_s):
            raise HandoverLinkError(f"no connection to {self.publisher.broker.url} within {timeout_s:g} s")
        if self.neighbours and not self.publisher.wait_subscribed(timeout_s):
            raise HandoverLinkError(
                f"no subscription to the neighbours' hand-over topics within {timeout_s:g} s"
            )

    def stop(self) -> None:
        """Nothing to close: the connection is the publisher's, stopped with it."""

    def publish(self, messages: Sequence[HandoverMessage]) -> list[int]:
        """Send `messages` (QoS 1); returns their message ids (see `acknowledged`)."""
        mids: list[int] = []
        for message in messages:
            mid = self.publisher.publish_control(self.topic, message.to_json())
            if mid is None:
                self._not_sent(message, "not connected")
                continue
            self.sent += 1
            mids.append(mid)
        return mids

    def acknowledged(self, mids: Sequence[int]) -> bool:
        """True when the broker acknowledged every message id in `mids`."""
        return self.publisher.control_acknowledged(mids)


class HandoverTransport(_HandoverInbox):
    """One box's hand-over link on a connection of its own (see the module docstring for when).

    Args:
        broker: the box's broker settings (URL, account, TLS).
        store_id, node_id: this box.
        neighbours: the node ids whose hand-over topics it reads.
        password: the broker account's password (`BrokerConfig.password()`).
        url: overrides `broker.url`.
        client_id: the MQTT client id (default `showroom-{store}-{node}-handover`).
    """

    def __init__(
        self,
        broker: BrokerConfig,
        store_id: str,
        node_id: str,
        neighbours: Sequence[str],
        *,
        password: str | None = None,
        url: str | None = None,
        client_id: str | None = None,
    ) -> None:
        super().__init__(store_id, node_id, neighbours)
        self.broker = broker if url is None else broker.model_copy(update={"url": url})
        self._password = password
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._pending_subs: set[int] = set()
        self._acked: set[int] = set()
        self._acked_lock = threading.Lock()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"showroom-{store_id}-{node_id}-handover",
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=True,
        )
        log_in(self._client, self.broker, password)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.on_publish = self._on_publish
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)

    def connect(self) -> None:
        """Start connecting in the background (and reconnecting whenever the link drops)."""
        host, port = self.broker.host_port
        self._client.connect_async(host, port, keepalive=self.broker.keepalive_s)
        self._client.loop_start()

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect and subscribe to every neighbour's topic; `HandoverLinkError` if that fails in time."""
        self.connect()
        if not self._connected.wait(timeout_s):
            self.stop()
            raise HandoverLinkError(f"no connection to {self.broker.url} within {timeout_s:g} s")
        if self.neighbours and not self._subscribed.wait(timeout_s):
            self.stop()
            raise HandoverLinkError(
                f"no subscription to the neighbours' hand-over topics within {timeout_s:g} s"
            )

    def stop(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def publish(self, messages: Sequence[HandoverMessage]) -> list[int]:
        """Send `messages` (QoS 1); returns their message ids (see `acknowledged`). A message the client
        cannot queue (not connected) is counted in `send_failures` and logged: its offer will time out."""
        mids: list[int] = []
        for message in messages:
            info = self._client.publish(self.topic, message.to_json(), qos=1, retain=False)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                self._not_sent(message, info.rc)
                continue
            self.sent += 1
            mids.append(info.mid)
        return mids

    def acknowledged(self, mids: Sequence[int]) -> bool:
        """True when the broker acknowledged every message id in `mids`."""
        with self._acked_lock:
            return all(mid in self._acked for mid in mids)

    # -- paho callbacks (network thread) ---------------------------------------------------------------

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker %s refused the hand-over link: %s", self.broker.url, reason)
            return
        self._subscribed.clear()
        topics = [(t, 1) for t in self.neighbour_topics]
        if topics:
            result, mid = client.subscribe(topics)
            if result == paho.MQTT_ERR_SUCCESS and mid is not None:
                self._pending_subs.add(mid)
        self._connected.set()

    def _on_subscribe(self, _c: paho.Client, _u: Any, mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            log.error("broker refused the neighbours' hand-over topics: %s", ", ".join(refused))
            return
        self._pending_subs.discard(mid)
        self._subscribed.set()

    def _on_publish(self, _c: paho.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused a hand-over message: %s", reason)
            return
        with self._acked_lock:
            self._acked.add(mid)

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        self._deliver(msg.topic, bytes(msg.payload))


__all__ = ["HandoverChannel", "HandoverLinkError", "HandoverTransport", "PublisherHandoverTransport"]
