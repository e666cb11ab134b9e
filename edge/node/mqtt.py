"""The MQTT publisher: drains the outbox to the broker with QoS 1, deleting only what was acknowledged.

paho-mqtt 2 in its threaded mode. MQTT 5 first; a broker that answers "unsupported protocol version" (or
closes the connection before any CONNACK, as some 3.1.1-only brokers do) is retried with MQTT 3.1.1 and
the choice is kept (the rule lives in `edge.mqtt_common`, shared with the aggregator). Username, password
and TLS come from the node's `BrokerConfig`.

Status: on every connect the node publishes a retained `online` status; the MQTT last will is a retained
`offline`, so a node that dies or loses its network shows offline. The will is made again before every
(re)connection and carries the same `ts` as that connection's `online` (never an older one): the
aggregator keeps the latest status, so the will of the live connection always overrides its `online`,
and only the will of an earlier connection is older. A clean stop publishes `offline` itself and then
disconnects (a clean disconnect does not fire the will).

Reconnecting waits a random 0.5-3 s each time (`edge.mqtt_common.arm_reconnect`), never longer.

Replay: the node subscribes to its own `.../replay` topic. A request (`edge.mqtt_common.ReplayRequest`)
is answered from the outbox's history: the payloads of the range it still holds are published again
(QoS 1, their original bytes), then a `ReplayReply` on `.../replay/reply` lists what it could not send
and why.

Control messages: other parts of the node (the hand-over link between the boxes of a store) ride on this
same connection rather than opening a second one under the node's account (an installer-configured broker
uses the user name as client id, so a second connection would take the first one's place). `subscribe`
adds topic filters with a handler; they are subscribed again on every connect (after a fall-back to MQTT
3.1.1 too). `publish_control` sends a message at QoS 1 outside the outbox (nothing kept if it cannot go
now); `control_acknowledged` says whether the broker acknowledged it.

Delivery: a row is published, remembered in flight by its message id, and deleted from the outbox when its
PUBACK arrives. paho re-sends in-flight messages after a reconnect; a message still unacknowledged after
`resend_after_s` while connected is published again from the outbox. The result is at-least-once: a
duplicate is possible (a PUBACK lost with the connection), a loss is not; the aggregator stores each
`event_id` once.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from edge.config import BrokerConfig
from edge.events import Status, new_event_id, replay_reply_topic, replay_topic, to_json, topic
from edge.mqtt_common import (
    CLOSES_BEFORE_CONNACK_TO_FALL_BACK,
    ReplayFormatError,
    ReplayReply,
    ReplayRequest,
    arm_reconnect,
    refuses_mqtt5,
)
from edge.node.outbox import Outbox

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]
"""Called on the network thread with a message's topic and payload: record it, never block."""


@dataclass(frozen=True)
class PublisherStats:
    connected: bool
    protocol: str
    connects: int
    disconnects: int
    published: int
    acked: int
    refused: int
    in_flight: int
    replays: int = 0
    """Replay requests answered."""
    replayed: int = 0
    """Payloads published again for them."""
    replays_refused: int = 0
    """Replay requests too malformed to answer (logged)."""
    control_sent: int = 0
    """Control messages (`publish_control`) handed to the connection."""
    control_acked: int = 0
    """... and acknowledged by the broker."""


def log_in(client: paho.Client, broker: BrokerConfig, password: str | None) -> None:
    """Give `client` the node's broker account (user name and password) and, for `mqtts://` or a `tls`
    block, its TLS settings (the broker's certificate is always verified unless `insecure_skip_verify`)."""
    if broker.username is not None:
        client.username_pw_set(broker.username, password)
    if broker.uses_tls:
        tls = broker.tls
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls and tls.ca_file else None,
            certfile=str(tls.cert_file) if tls and tls.cert_file else None,
            keyfile=str(tls.key_file) if tls and tls.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        if tls and tls.insecure_skip_verify:
            client.tls_insecure_set(True)


class MqttPublisher:
    """Publishes the outbox's rows in `seq` order and the node's retained status.

    Args:
        broker: URL, credentials, TLS and keepalive.
        outbox: the durable outbox to drain.
        store_id, node_id: the node's ids (topics and status payloads).
        max_in_flight: unacknowledged QoS 1 messages at once.
        resend_after_s: re-publish a message whose PUBACK has not come this long after it was sent.
        url: overrides `broker.url` (the CLI's --broker).
        clock: wall clock in Unix seconds (status timestamps).
    """

    def __init__(
        self,
        broker: BrokerConfig,
        outbox: Outbox,
        *,
        store_id: str,
        node_id: str,
        max_in_flight: int = 20,
        resend_after_s: float = 30.0,
        url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.broker = broker if url is None else broker.model_copy(update={"url": url})
        BrokerConfig.model_validate(self.broker.model_dump())  # a bad --broker URL fails here, not later
        self.outbox = outbox
        self.store_id = store_id
        self.node_id = node_id
        self.status_topic = topic(store_id, node_id, "status")
        self.replay_topic = replay_topic(store_id, node_id)
        self._clock = clock
        self._connection_ts = self._now()
        """The `ts` of this (or the next) connection's `online` and of its will."""
        self._replay_requests: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._untracked: set[int] = set()
        """Message ids of replayed payloads: their acknowledgements concern no unsent row."""
        self._replays = 0
        self._replayed = 0
        self._replays_refused = 0
        self.max_in_flight = max_in_flight
        self.resend_after_s = resend_after_s
        self.client_id = self.broker.client_id or f"showroom-{store_id}-{node_id}"[:64]
        self._password = self.broker.password()
        self._protocol = MQTTProtocolVersion.MQTTv5
        self._client: paho.Client | None = None
        self._connected = threading.Event()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._acks: queue.SimpleQueue[tuple[int, bool]] = queue.SimpleQueue()
        self._in_flight: dict[int, tuple[int, float]] = {}  # mid -> (seq, sent at, monotonic)
        self._early_acks: dict[int, bool] = {}
        self._got_connack = False
        self._closed_before_connack = 0
        self._fallback = threading.Event()
        self._connects = 0
        self._disconnects = 0
        self._published = 0
        self._acked = 0
        self._refused = 0
        self._subscriptions: list[tuple[tuple[str, ...], MessageHandler]] = []
        self._subscribed = threading.Event()
        self._pending_subs: set[int] = set()
        self._subs_lock = threading.Lock()
        self._control_lock = threading.Lock()
        self._control_pending: set[int] = set()
        """Message ids of control messages sent, not yet acknowledged."""
        self._control_acked: set[int] = set()
        self._control_early: dict[int, bool] = {}
        """Acknowledgements that came while a control message was being handed to paho (maybe its own)."""
        self._control_publishing = 0
        self._control_sent = 0
        self._control_acked_n = 0

    # ------------------------------------------------------------------------------------------------
    # Client set-up
    # ------------------------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _status(self, status: Literal["online", "offline"], ts: datetime | None = None) -> Status:
        seq = max(self.outbox.next_seq - 1, 0)
        now = self._now() if ts is None else ts
        return Status(
            event_id=new_event_id(now),
            seq=seq,
            store_id=self.store_id,
            node_id=self.node_id,
            ts=now,
            status=status,
        )

    def _arm_will(self, client: paho.Client) -> None:
        """A new connection stamp; the next CONNECT's will carries it (and so will its `online`)."""
        self._connection_ts = self._now()
        client.will_set(
            self.status_topic, to_json(self._status("offline", self._connection_ts)), qos=1, retain=True
        )

    def _make_client(self) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=self._protocol,
            reconnect_on_failure=True,
        )
        log_in(client, self.broker, self._password)
        self._arm_will(client)
        arm_reconnect(client)
        client.max_inflight_messages_set(self.max_in_flight)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _start_client(self) -> None:
        host, port = self.broker.host_port
        self._got_connack = False
        self._client = self._make_client()
        self._client.connect_async(host, port, keepalive=self.broker.keepalive_s)
        self._client.loop_start()

    # ------------------------------------------------------------------------------------------------
    # paho callbacks (network thread): record, never block
    # ------------------------------------------------------------------------------------------------

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        self._got_connack = True
        if reason.is_failure:
            if refuses_mqtt5(reason):
                self._fallback.set()
            log.error("broker %s refused the connection: %s", self.broker.url, reason)
            return
        self._connects += 1
        self._closed_before_connack = 0
        log.info(
            "connected to %s (%s)",
            self.broker.url,
            "MQTT 5" if self._protocol == MQTTProtocolVersion.MQTTv5 else "MQTT 3.1.1",
        )
        client.publish(
            self.status_topic, to_json(self._status("online", self._connection_ts)), qos=1, retain=True
        )
        client.subscribe(self.replay_topic, qos=1)
        self._subscribe_extra(client)  # sets connected
        self._wake.set()

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        log.warning("cannot reach broker %s; retrying in %.1f s", self.broker.url, arm_reconnect(client))

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        self._subscribed.clear()
        if not self._stopping.is_set():
            self._arm_will(client)
            arm_reconnect(client)
        if was_connected:
            self._disconnects += 1
            if not self._stopping.is_set():
                log.warning("lost broker %s (%s); reconnecting", self.broker.url, reason)
        elif not self._got_connack and self._protocol == MQTTProtocolVersion.MQTTv5:
            # Closed before any CONNACK: how some MQTT 3.1.1-only brokers answer a version 5 CONNECT.
            # Three in a row, so that a broker restarting during a handshake does not cause it.
            self._closed_before_connack += 1
            if self._closed_before_connack >= CLOSES_BEFORE_CONNACK_TO_FALL_BACK:
                self._fallback.set()
        self._got_connack = False

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, properties: Any
    ) -> None:
        ok = not reason.is_failure
        with self._control_lock:
            if mid in self._control_pending:
                self._control_pending.discard(mid)
                self._control_ack(mid, ok)
                return
            if self._control_publishing:
                self._control_early[mid] = ok
        self._acks.put((mid, ok))
        self._wake.set()

    def _control_ack(self, mid: int, ok: bool) -> None:
        """Record a control message's acknowledgement (the control lock held)."""
        if ok:
            self._control_acked.add(mid)
            self._control_acked_n += 1
        else:
            log.warning("broker refused a control message (mid %d)", mid)

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, reasons: list[ReasonCode], properties: Any
    ) -> None:
        with self._subs_lock:  # the SUBACK may come before `_subscribe_to` has recorded its id
            if mid not in self._pending_subs:
                return
            refused = [str(r) for r in reasons if r.is_failure]
            if refused:
                log.error("broker %s refused a subscription: %s", self.broker.url, ", ".join(refused))
                return
            self._pending_subs.discard(mid)
            if not self._pending_subs:
                self._subscribed.set()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        if msg.topic == self.replay_topic:
            self._replay_requests.put(bytes(msg.payload))
            self._wake.set()
            return
        for filters, handler in list(self._subscriptions):
            if any(paho.topic_matches_sub(f, msg.topic) for f in filters):
                try:
                    handler(msg.topic, bytes(msg.payload))
                except Exception:
                    log.exception("handler for %s failed", msg.topic)

    # ------------------------------------------------------------------------------------------------
    # Control messages and extra subscriptions (any thread)
    # ------------------------------------------------------------------------------------------------

    def subscribe(self, topic_filters: Sequence[str], handler: MessageHandler) -> None:
        """Read `topic_filters` (QoS 1) on this connection, now and after every reconnect; `handler` gets
        each message on them (on the network thread: it must not block)."""
        filters = tuple(topic_filters)
        if not filters:
            return
        with self._subs_lock:  # against a connect going through the list at the same time
            self._subscriptions.append((filters, handler))
            client = self._client
            if client is not None and self._connected.is_set():
                self._subscribed.clear()
                self._subscribe_to(client, filters)

    def _subscribe_extra(self, client: paho.Client) -> None:
        """Subscribe again to what `subscribe` added (a new connection's session has none of it)."""
        with self._subs_lock:
            self._pending_subs.clear()
            self._subscribed.clear()
            for filters, _handler in self._subscriptions:
                self._subscribe_to(client, filters)
            if not self._pending_subs:
                self._subscribed.set()
            self._connected.set()

    def _subscribe_to(self, client: paho.Client, filters: tuple[str, ...]) -> None:
        result, mid = client.subscribe([(f, 1) for f in filters])
        if result == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
            self._pending_subs.add(mid)
        else:
            log.warning("subscription to %s not sent: %s", ", ".join(filters), result)

    def wait_subscribed(self, timeout_s: float) -> bool:
        """Block until the broker granted every subscription of `subscribe` on the live connection."""
        return self._subscribed.wait(timeout_s)

    def publish_control(self, topic_name: str, payload: bytes) -> int | None:
        """Send `payload` on `topic_name` at QoS 1 on this connection, outside the outbox; its message id
        (see `control_acknowledged`), or None when it cannot go now (not connected: nothing is kept)."""
        client = self._client
        if client is None or not self._connected.is_set():
            return None
        with self._control_lock:
            self._control_publishing += 1
        # Not under the lock: paho calls on_publish holding its own lock, which publish() takes too.
        info = client.publish(topic_name, payload, qos=1, retain=False)
        with self._control_lock:
            self._control_publishing -= 1
            early = self._control_early.pop(info.mid, None)
            if not self._control_publishing:
                self._control_early.clear()
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return None
            self._control_sent += 1
            self._control_acked.discard(info.mid)  # an earlier message's, under the same (reused) id
            if early is None:
                self._control_pending.add(info.mid)
            else:
                self._control_ack(info.mid, early)
        return info.mid

    def control_acknowledged(self, mids: Sequence[int]) -> bool:
        """True when the broker acknowledged every control message id in `mids`."""
        with self._control_lock:
            return all(mid in self._control_acked for mid in mids)

    # ------------------------------------------------------------------------------------------------
    # The drain loop (its own thread: the only one touching the in-flight table)
    # ------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background and start draining; returns at once."""
        if self._thread is not None:
            raise RuntimeError("publisher already started")
        self._start_client()
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """New rows are in the outbox: publish them now rather than at the next poll."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(0.2)
            self._wake.clear()
            try:
                self._maybe_fall_back()
                self._handle_acks()
                if self._connected.is_set():
                    self._requeue_stale()
                    self._answer_replays()
                    self._publish_pending()
            except Exception:
                # The publisher must outlive any one bad round; the rows stay in the outbox.
                log.exception("publisher round failed; retrying")
                time.sleep(1.0)
        self._handle_acks()

    def _maybe_fall_back(self) -> None:
        if not self._fallback.is_set() or self._protocol != MQTTProtocolVersion.MQTTv5:
            return
        log.warning("broker %s does not speak MQTT 5; falling back to MQTT 3.1.1", self.broker.url)
        self._fallback.clear()
        old = self._client
        self._protocol = MQTTProtocolVersion.MQTTv311
        if old is not None:
            old.loop_stop()
            old.disconnect()
        self._in_flight.clear()
        self._early_acks.clear()
        self._untracked.clear()
        with self._control_lock:
            self._control_pending.clear()
        self._start_client()

    def _handle_acks(self) -> None:
        while True:
            try:
                mid, ok = self._acks.get_nowait()
            except queue.Empty:
                break
            if mid in self._untracked:
                self._untracked.discard(mid)
                continue
            self._early_acks[mid] = ok
        for mid in list(self._early_acks):
            if mid not in self._in_flight:
                continue
            ok = self._early_acks.pop(mid)
            seq, _ = self._in_flight.pop(mid)
            if ok:
                self.outbox.ack(seq)
                self._acked += 1
            else:
                # The broker refused it (e.g. not authorised): keep it, it is retried after resend_after_s.
                self._refused += 1
                log.error("broker refused seq %d; kept in the outbox", seq)
        # Acks for ids not in flight (the status messages) are dropped after a while.
        if len(self._early_acks) > 1000:
            self._early_acks.clear()

    def _requeue_stale(self) -> None:
        now = time.monotonic()
        for mid, (seq, sent_at) in list(self._in_flight.items()):
            if now - sent_at > self.resend_after_s:
                log.warning("seq %d unacknowledged for %.0f s; publishing it again", seq, now - sent_at)
                del self._in_flight[mid]

    def _answer_replays(self) -> None:
        """Answer the replay requests received: the history's rows of the range again, then the reply."""
        client = self._client
        while client is not None:
            try:
                payload = self._replay_requests.get_nowait()
            except queue.Empty:
                return
            try:
                request = ReplayRequest.parse(payload)
            except ReplayFormatError as exc:
                self._replays_refused += 1
                log.warning("replay request not answered: %s", exc)
                continue
            found = self.outbox.replay(request.from_seq, request.to_seq)
            for row in found.rows:
                self._untracked.add(client.publish(row.topic, row.payload, qos=1).mid)
            reply = ReplayReply(
                request.request_id,
                request.from_seq,
                request.to_seq,
                len(found.rows),
                tuple((u.lo, u.hi, u.reason) for u in found.unavailable),
            )
            info = client.publish(replay_reply_topic(self.store_id, self.node_id), reply.to_json(), qos=1)
            self._untracked.add(info.mid)
            if len(self._untracked) > 50_000:
                # Bounded: ids whose acknowledgement never came (lost with a connection) are forgotten; paho
                # hands out ids in turn, so one comes back only after 65,535 other publishes.
                self._untracked.clear()
            self._replays += 1
            self._replayed += len(found.rows)
            log.info(
                "replayed seq %d..%d: %d payload(s) sent again, %d range(s) unavailable%s",
                request.from_seq,
                request.to_seq,
                len(found.rows),
                len(found.unavailable),
                "".join(f"; {u.lo}..{u.hi}: {u.reason}" for u in found.unavailable[:3]),
            )

    def _publish_pending(self) -> None:
        client = self._client
        room = self.max_in_flight - len(self._in_flight)
        if client is None or room <= 0:
            return
        in_flight_seqs = {seq for seq, _ in self._in_flight.values()}
        for row in self.outbox.pending(limit=room, exclude=in_flight_seqs):
            info = client.publish(row.topic, row.payload, qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                # Not connected any more: paho keeps QoS 1 messages it queued, but this one it refused.
                if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
                    self._in_flight[info.mid] = (row.seq, time.monotonic())
                    self._published += 1
                break
            self._in_flight[info.mid] = (row.seq, time.monotonic())
            self._published += 1

    # ------------------------------------------------------------------------------------------------
    # Observability and shutdown
    # ------------------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def wait_drained(self, timeout_s: float) -> bool:
        """Block until the outbox is empty (everything acknowledged) or `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.outbox.depth() == 0:
                return True
            self._wake.set()
            time.sleep(0.05)
        return self.outbox.depth() == 0

    def stats(self) -> PublisherStats:
        return PublisherStats(
            connected=self.connected,
            protocol="5" if self._protocol == MQTTProtocolVersion.MQTTv5 else "3.1.1",
            connects=self._connects,
            disconnects=self._disconnects,
            published=self._published,
            acked=self._acked,
            refused=self._refused,
            in_flight=len(self._in_flight),
            replays=self._replays,
            replayed=self._replayed,
            replays_refused=self._replays_refused,
            control_sent=self._control_sent,
            control_acked=self._control_acked_n,
        )

    def stop(self, *, drain_timeout_s: float = 5.0, publish_offline: bool = True) -> None:
        """Drain what can be drained, publish the retained `offline`, disconnect cleanly.

        Whatever is not acknowledged by then stays in the outbox for the next start.
        """
        if self._thread is None:
            return
        if self.connected and drain_timeout_s > 0:
            self.wait_drained(drain_timeout_s)
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=5.0)
        client = self._client
        if client is not None:
            if publish_offline and self.connected:
                info = client.publish(self.status_topic, to_json(self._status("offline")), qos=1, retain=True)
                try:
                    info.wait_for_publish(timeout=3.0)
                except (RuntimeError, ValueError) as exc:
                    log.warning("offline status not confirmed: %s", exc)
            client.disconnect()
            client.loop_stop()
        self._thread = None
        log.info("publisher stopped: %s", self.stats())
