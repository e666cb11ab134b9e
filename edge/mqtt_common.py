"""What both ends of the MQTT link share: the node's publisher and the aggregator's subscriber.

The broker address (`mqtt://host[:1883]`, `mqtts://host[:8883]`) and the rule for giving up on MQTT 5:
a CONNACK that refuses the protocol version, or `CLOSES_BEFORE_CONNACK_TO_FALL_BACK` connections in a row
closed before any CONNACK (how some MQTT 3.1.1-only brokers answer a version 5 CONNECT), makes a client
fall back to MQTT 3.1.1. One rule, so the node and the aggregator agree on what a broker speaks.

Reconnecting: both ends wait a random `RECONNECT_MIN_S`..`RECONNECT_MAX_S` before each new try
(`arm_reconnect`), never longer, so they are back within a few seconds of the broker and a fleet of
nodes does not reconnect in one burst.

Replay: the aggregator, missing a range of a node's `seq`, sends a `ReplayRequest` on the node's
`.../replay` topic; the node publishes what its outbox history holds of the range again (on the usual
topics: the aggregator stores each `event_id` once) and then a `ReplayReply` on `.../replay/reply` that
says, for what it could not send, why.

A leaf on purpose: besides paho and the standard library it imports nothing, so the aggregator may use it
(beside the event contract, `edge.events`) without depending on the node (tests/test_layering.py).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlparse

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

_UNSUPPORTED_PROTOCOL = 132  # MQTT 5 CONNACK "Unsupported Protocol Version" (0x84)
_V311_REFUSED_PROTOCOL = 1  # MQTT 3.1.1 CONNACK "unacceptable protocol version"
CLOSES_BEFORE_CONNACK_TO_FALL_BACK = 3
"""MQTT 5 CONNECTs closed before any CONNACK, in a row, that make a client fall back to MQTT 3.1.1 (some
3.1.1-only brokers answer that way; one or two may just be a broker restarting during the handshake)."""

PLAIN_PORT = 1883
TLS_PORT = 8883


def refuses_mqtt5(reason: ReasonCode) -> bool:
    """True when a CONNACK refusal means "this broker does not speak MQTT 5" (retry with MQTT 3.1.1)."""
    return reason.value in (_UNSUPPORTED_PROTOCOL, _V311_REFUSED_PROTOCOL)


@dataclass(frozen=True)
class BrokerAddress:
    """Where a broker listens and whether the connection uses TLS."""

    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str, *, tls: bool | None = None) -> BrokerAddress:
        """`mqtt://host[:1883]` or `mqtts://host[:8883]` (`tcp://` and `ssl://` are accepted as aliases).

        Args:
            url: the broker URL; `ValueError` naming it when the scheme or the host is wrong.
            tls: force TLS on or off (a node config with a `tls` section on an `mqtt://` URL); default:
                from the scheme. The default port follows the TLS choice.
        """
        parsed = urlparse(url)
        if parsed.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
        if not parsed.hostname:
            raise ValueError(f"broker URL {url!r} has no host")
        use_tls = parsed.scheme in ("mqtts", "ssl") if tls is None else tls
        return cls(parsed.hostname, parsed.port or (TLS_PORT if use_tls else PLAIN_PORT), use_tls)


RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 3.0
"""Bounds of the random wait before each reconnection attempt (seconds)."""


def arm_reconnect(client: paho.Client) -> float:
    """Make `client`'s next reconnection wait a fresh random delay within the bounds above; returns it.

    Called at every disconnect and failed attempt: the wait never grows past `RECONNECT_MAX_S`."""
    delay = random.uniform(RECONNECT_MIN_S, RECONNECT_MAX_S)
    # paho takes seconds as int in its annotations; fractions work (it adds them to a float clock).
    client.reconnect_delay_set(min_delay=cast(int, delay), max_delay=cast(int, delay))
    return delay


REPLAY_MAX_SPAN = 100_000
"""The widest `seq` range one replay request may ask for; a wider gap is no loss the node can repair
(a forged or corrupted `seq` is the likelier cause) and is reported instead of asked for."""
REPLAY_REASON_MAX_CHARS = 200


class ReplayFormatError(ValueError):
    """A replay request or reply that does not follow the format; the message names the field."""


def _int_field(data: dict[str, Any], name: str, lo: int = 0, hi: int = 2**63 - 1) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ReplayFormatError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    return value


def _object_of(payload: bytes | str, what: str) -> dict[str, Any]:
    if len(payload) > 64 * 1024:
        raise ReplayFormatError(f"{what} is {len(payload)} bytes, over 65536")
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise ReplayFormatError(f"{what} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ReplayFormatError(f"{what} must be a JSON object, got {type(data).__name__}")
    return data


def _request_id(data: dict[str, Any]) -> str:
    value = data.get("request_id")
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise ReplayFormatError(f"request_id must be a string of 1 to 64 characters, got {value!r}")
    return value


@dataclass(frozen=True)
class ReplayRequest:
    """Send again the payloads numbered `from_seq`..`to_seq` (inclusive)."""

    request_id: str
    from_seq: int
    to_seq: int

    def __post_init__(self) -> None:
        if not 0 <= self.from_seq <= self.to_seq or self.to_seq - self.from_seq >= REPLAY_MAX_SPAN:
            raise ReplayFormatError(
                f"replay range must have 0 <= from_seq <= to_seq and span at most {REPLAY_MAX_SPAN}, "
                f"got {self.from_seq}..{self.to_seq}"
            )

    def to_json(self) -> bytes:
        return json.dumps(
            {"request_id": self.request_id, "from_seq": self.from_seq, "to_seq": self.to_seq}
        ).encode()

    @classmethod
    def parse(cls, payload: bytes | str) -> ReplayRequest:
        data = _object_of(payload, "replay request")
        return cls(_request_id(data), _int_field(data, "from_seq"), _int_field(data, "to_seq"))


@dataclass(frozen=True)
class ReplayReply:
    """The node's answer: how many payloads it sent again, and the sub-ranges it cannot send, with why
    (e.g. "outside node history")."""

    request_id: str
    from_seq: int
    to_seq: int
    replayed: int
    unavailable: tuple[tuple[int, int, str], ...] = ()

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "request_id": self.request_id,
                "from_seq": self.from_seq,
                "to_seq": self.to_seq,
                "replayed": self.replayed,
                "unavailable": [list(u) for u in self.unavailable],
            }
        ).encode()

    @classmethod
    def parse(cls, payload: bytes | str) -> ReplayReply:
        data = _object_of(payload, "replay reply")
        lo, hi = _int_field(data, "from_seq"), _int_field(data, "to_seq")
        if hi < lo or hi - lo >= REPLAY_MAX_SPAN:
            raise ReplayFormatError(f"from_seq..to_seq must be a range of at most {REPLAY_MAX_SPAN}")
        replayed = _int_field(data, "replayed", 0, REPLAY_MAX_SPAN)
        raw = data.get("unavailable", [])
        if not isinstance(raw, list) or len(raw) > 1000:
            raise ReplayFormatError("unavailable must be a list of at most 1000 [lo, hi, reason] entries")
        unavailable = []
        for i, item in enumerate(raw):
            if not (isinstance(item, list) and len(item) == 3):
                raise ReplayFormatError(f"unavailable[{i}] must be [lo, hi, reason], got {item!r}"[:200])
            u = {"lo": item[0], "hi": item[1]}
            ulo, uhi = _int_field(u, "lo", lo, hi), _int_field(u, "hi", lo, hi)
            reason = item[2]
            if ulo > uhi or not isinstance(reason, str) or not 0 < len(reason) <= REPLAY_REASON_MAX_CHARS:
                raise ReplayFormatError(f"unavailable[{i}] must have lo <= hi and a short reason")
            if "\x00" in reason:  # the aggregator keeps it as text, which cannot hold U+0000 everywhere
                raise ReplayFormatError(f"unavailable[{i}]'s reason holds the NUL character (U+0000)")
            unavailable.append((ulo, uhi, reason))
        return cls(_request_id(data), lo, hi, replayed, tuple(unavailable))


__all__ = [
    "CLOSES_BEFORE_CONNACK_TO_FALL_BACK",
    "REPLAY_MAX_SPAN",
    "BrokerAddress",
    "ReplayFormatError",
    "ReplayReply",
    "ReplayRequest",
    "arm_reconnect",
    "refuses_mqtt5",
]
