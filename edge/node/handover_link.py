"""The node runtime's side of the hand-over: the pipeline's hand-over (`edge.analytics.handover`) joined to
the broker (`edge.node.handover_transport`), for a box of a store served by several (`floor.areas`).

Before each step the messages that came are handed to the analytics; after it, what they want to say is
published. The messages travel on the node's one connection, its publisher's (which connects and
reconnects in the background, subscribing again each time): a broker out of reach delays nothing, and
offers that cannot go out time out at the sender and are counted (heartbeat `handover`).
"""

from __future__ import annotations

import logging

from edge.analytics.handover import Handover
from edge.events import HandoverHealth
from edge.node.handover_transport import HandoverChannel, PublisherHandoverTransport
from edge.node.mqtt import MqttPublisher

log = logging.getLogger(__name__)


class HandoverLink:
    """Carries one box's hand-over messages between its analytics and its neighbours."""

    def __init__(self, handover: Handover, transport: HandoverChannel) -> None:
        self.handover = handover
        self.transport = transport

    @classmethod
    def open(cls, publisher: MqttPublisher, handover: Handover | None) -> HandoverLink | None:
        """The link for a box with neighbours, on `publisher`'s connection; None for a store of one box."""
        if handover is None or not handover.layout.neighbours:
            return None
        transport = PublisherHandoverTransport(publisher, sorted(handover.layout.neighbours))
        log.info("hand-over link to %s", ", ".join(sorted(handover.layout.neighbours)))
        return cls(handover, transport)

    def before_step(self) -> None:
        for message in self.transport.received():
            self.handover.receive(message)

    def after_step(self) -> None:
        outgoing = self.handover.take_outgoing()
        if outgoing:
            self.transport.publish(outgoing)

    def set_clock_offset(self, offset_s: float | None) -> None:
        self.handover.clock_offset_s = offset_s

    def health(self) -> HandoverHealth:
        c = self.handover.counts
        return HandoverHealth(
            offered=c.offered,
            taken=c.taken,
            adopted=c.adopted,
            withdrawn=c.withdrawn,
            lost_at_boundary=c.lost_at_boundary,
            unmatched=c.unmatched,
            stale=c.stale,
            pending=self.handover.pending,
        )

    def close(self) -> None:
        self.after_step()
        self.transport.stop()


__all__ = ["HandoverLink"]
