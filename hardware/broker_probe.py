"""Commissioning's broker checks, made with the node's own account (MQTT 5).

1. The broker takes the node's credentials (CONNACK).
2. The broker refuses a publish under another store's topic: Mosquitto (2.x) with an ACL answers an MQTT 5
   QoS 1 PUBLISH it denies with PUBACK reason code 0x87 "Not authorized" (MQTT 3.1.1 has no such answer:
   the broker drops the message silently, so the refusal cannot be seen and the check fails).
3. A test message round-trips through the aggregator: the node publishes `{"nonce", "sent_at"}` to its
   `commission` topic (QoS 1, not retained) and waits for `{"nonce", "received_at"}` on
   `commission/reply`.
4. The clock offset, from that round trip (NTP's rule): the aggregator's `received_at` against the midpoint
   of the node's send and receipt times, with half the round trip as its uncertainty. Mosquitto has no clock
   a client can read, so without the aggregator's answer there is nothing to compare against.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import socket
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from edge.config import BrokerConfig, ConfigError
from edge.events import commission_reply_topic, commission_topic, topic
from edge.node.mqtt import log_in

log = logging.getLogger(__name__)

NOT_AUTHORIZED = 0x87


class BrokerCheckError(RuntimeError):
    """A broker check that could not be made or failed; the message says what the installer should fix."""


@dataclass(frozen=True)
class PublishOutcome:
    """The broker's answer to one QoS 1 publish: its PUBACK reason code, or None without a PUBACK."""

    reason_code: int | None
    reason: str

    @property
    def refused(self) -> bool:
        return self.reason_code is not None and self.reason_code >= 0x80


@dataclass(frozen=True)
class RoundTrip:
    """A commissioning message answered by the aggregator (times are UTC)."""

    nonce: str
    sent_at: datetime
    aggregator_received_at: datetime
    answered_at: datetime

    @property
    def round_trip_ms(self) -> float:
        return (self.answered_at - self.sent_at).total_seconds() * 1000.0

    @property
    def clock_offset_s(self) -> float:
        """Aggregator clock minus node clock, seconds (positive: the node is behind)."""
        midpoint = self.sent_at + (self.answered_at - self.sent_at) / 2
        return (self.aggregator_received_at - midpoint).total_seconds()

    @property
    def offset_uncertainty_s(self) -> float:
        return (self.answered_at - self.sent_at).total_seconds() / 2


def other_store_id(store_id: str) -> str:
    """A store id that is surely not `store_id` (for the refused-publish check)."""
    return "commission-probe" if store_id != "commission-probe" else "commission-probe-2"


class BrokerSession:
    """One MQTT 5 connection with the node's account: connect, publish and wait for PUBACKs, wait for
    messages on the node's reply topic. Use as a context manager.

    Raises `BrokerCheckError` from `connect` when the password cannot be read, the broker cannot be
    reached or it refuses the credentials.
    """

    def __init__(self, broker: BrokerConfig, *, store_id: str, node_id: str, timeout_s: float = 10.0) -> None:
        self.broker = broker
        self.store_id = store_id
        self.node_id = node_id
        self.timeout_s = timeout_s
        # Not the node's own client id: a running node on the same account must not be disconnected.
        self.client_id = f"showroom-{store_id}-{node_id}-commission"[:64]
        self._connack: queue.SimpleQueue[ReasonCode] = queue.SimpleQueue()
        self._acks: dict[int, ReasonCode] = {}
        self._acked = threading.Condition()
        self._messages: queue.SimpleQueue[tuple[str, bytes, datetime]] = queue.SimpleQueue()
        self._subacks: queue.SimpleQueue[list[ReasonCode]] = queue.SimpleQueue()
        self._client: paho.Client | None = None

    def __enter__(self) -> BrokerSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _make_client(self) -> paho.Client:
        try:
            password = self.broker.password()
        except ConfigError as exc:
            problems = "; ".join(f"{path}: {message}" for path, message in exc.problems)
            raise BrokerCheckError(f"cannot read the broker password ({problems})") from exc
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            reconnect_on_failure=False,
        )
        log_in(client, self.broker, password)
        client.connect_timeout = self.timeout_s
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    # -- paho callbacks (network thread) -------------------------------------------------------------

    def _on_connect(self, _c: paho.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self._connack.put(reason)

    def _on_publish(self, _c: paho.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        with self._acked:
            self._acks[mid] = reason
            self._acked.notify_all()

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        self._messages.put((msg.topic, bytes(msg.payload), datetime.now(UTC)))

    def _on_subscribe(self, _c: paho.Client, _u: Any, _mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        self._subacks.put(reasons)

    # -- the checks ----------------------------------------------------------------------------------

    def connect(self) -> str:
        """Connect with the node's credentials; returns a line describing the accepted connection."""
        host, port = self.broker.host_port
        client = self._make_client()
        try:
            client.connect(host, port, keepalive=self.broker.keepalive_s)
        except (OSError, ssl.SSLError) as exc:
            if isinstance(exc, socket.gaierror):
                why = f"unknown host {host!r}"
            elif isinstance(exc, ConnectionRefusedError):
                why = "connection refused (nothing listens there)"
            elif isinstance(exc, TimeoutError | socket.timeout):
                why = f"no answer within {self.timeout_s:g} s"
            else:
                why = str(exc) or type(exc).__name__
            raise BrokerCheckError(f"cannot reach the broker {self.broker.url}: {why}") from exc
        self._client = client
        client.loop_start()
        try:
            reason = self._connack.get(timeout=self.timeout_s)
        except queue.Empty:
            raise BrokerCheckError(
                f"broker {self.broker.url} did not answer the connection within {self.timeout_s:g} s"
            ) from None
        if reason.is_failure:
            user = self.broker.username or "(no user name)"
            raise BrokerCheckError(
                f"broker {self.broker.url} refused user {user}: {reason} (MQTT 5 reason code "
                f"0x{reason.value:02X}); check broker.username and the password"
            )
        return f"{self.broker.url} as {self.broker.username or '(anonymous)'} (MQTT 5)"

    def publish(self, topic_name: str, payload: bytes) -> PublishOutcome:
        """QoS 1 publish; waits for the PUBACK and returns its reason code."""
        client = self._require_client()
        info = client.publish(topic_name, payload, qos=1, retain=False)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return PublishOutcome(None, f"not sent: {paho.error_string(info.rc)}")
        with self._acked:
            if not self._acked.wait_for(lambda: info.mid in self._acks, timeout=self.timeout_s):
                return PublishOutcome(None, f"no PUBACK within {self.timeout_s:g} s")
            reason = self._acks.pop(info.mid)
        return PublishOutcome(int(reason.value), str(reason))

    def check_other_store_refused(self) -> tuple[str, PublishOutcome]:
        """Publish a probe under another store's `events` topic; the ACL must refuse it (0x87)."""
        probe_topic = topic(other_store_id(self.store_id), self.node_id, "events")
        body = {"probe": "commissioning: this account must not publish under another store"}
        return probe_topic, self.publish(probe_topic, json.dumps(body).encode())

    def round_trip(self, timeout_s: float | None = None) -> RoundTrip:
        """Send the commissioning message and wait for the aggregator's answer; `BrokerCheckError` if the
        broker refuses it or no answer with its nonce comes within the timeout."""
        client = self._require_client()
        wait_s = self.timeout_s if timeout_s is None else timeout_s
        reply_topic = commission_reply_topic(self.store_id, self.node_id)
        result, _ = client.subscribe(reply_topic, qos=1)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise BrokerCheckError(f"cannot subscribe to {reply_topic}: {paho.error_string(result)}")
        try:
            granted = self._subacks.get(timeout=wait_s)
        except queue.Empty:
            raise BrokerCheckError(f"no SUBACK for {reply_topic} within {wait_s:g} s") from None
        if any(code.is_failure for code in granted):
            raise BrokerCheckError(f"broker refused the subscription to {reply_topic}: {granted[0]}")
        nonce = secrets.token_hex(12)
        sent_at = datetime.now(UTC)
        request = {
            "nonce": nonce,
            "sent_at": sent_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        request_topic = commission_topic(self.store_id, self.node_id)
        outcome = self.publish(request_topic, json.dumps(request).encode())
        if outcome.reason_code is None or outcome.refused:
            raise BrokerCheckError(f"broker did not take the message on {request_topic}: {outcome.reason}")
        deadline = sent_at.timestamp() + wait_s
        while (left := deadline - datetime.now(UTC).timestamp()) > 0:
            try:
                got_topic, payload, answered_at = self._messages.get(timeout=left)
            except queue.Empty:
                break
            answer = _parse_reply(payload)
            if got_topic != reply_topic or answer is None or answer[0] != nonce:
                log.info("ignored a message on %s that is not the answer to this test", got_topic)
                continue
            return RoundTrip(nonce, sent_at, answer[1], answered_at)
        raise BrokerCheckError(
            f"no answer from the aggregator on {reply_topic} within {wait_s:g} s: is `showroom aggregator "
            "run` connected, and may it write showroom/v1/+/+/commission/reply and this node read its reply?"
        )

    def _require_client(self) -> paho.Client:
        if self._client is None:
            raise BrokerCheckError("not connected")
        return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()


def _parse_reply(payload: bytes) -> tuple[str, datetime] | None:
    """(nonce, received_at in UTC) of an aggregator answer; None for anything else."""
    try:
        data = json.loads(payload)
        received_at = datetime.fromisoformat(str(data["received_at"]).replace("Z", "+00:00"))
        nonce = data["nonce"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(nonce, str) or received_at.tzinfo is None:
        return None
    return nonce, received_at.astimezone(UTC)
