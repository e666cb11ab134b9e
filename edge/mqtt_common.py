"""What both ends of the MQTT link share: the node's publisher and the aggregator's subscriber.

The broker address (`mqtt://host[:1883]`, `mqtts://host[:8883]`) and the rule for giving up on MQTT 5:
a CONNACK that refuses the protocol version, or `CLOSES_BEFORE_CONNACK_TO_FALL_BACK` connections in a row
closed before any CONNACK (how some MQTT 3.1.1-only brokers answer a version 5 CONNECT), makes a client
fall back to MQTT 3.1.1. One rule, so the node and the aggregator agree on what a broker speaks.

A leaf on purpose: besides paho and the standard library it imports nothing, so the aggregator may use it
(beside the event contract, `edge.events`) without depending on the node (tests/test_layering.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

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


__all__ = ["CLOSES_BEFORE_CONNACK_TO_FALL_BACK", "BrokerAddress", "refuses_mqtt5"]
