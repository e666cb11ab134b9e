"""A simulated store served by several edge boxes, handing visitors over through a real MQTT broker.

`split_store` divides the store's floor into one area per box (`edge.store_areas.propose_areas`:
boundaries in the gaps between display cars) and gives each box the store's floor plan, its area and its
own cameras: copies of the store's cameras with their own noise, each seeing only the box's area and the
overlap strip past its boundaries. `run_boxes` runs every box's real pipeline on the same simulated people
in step, and carries each box's hand-over messages to its neighbours through the broker
(`edge.node.handover_transport.HandoverTransport`, a connection per box under its own client id: these boxes
have no publisher to ride on): what one box publishes at a step reaches its neighbour before the next.
The store's events are the union of every box's; `showroom.sim.evaluate.measure` joins them by visitor id.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from shapely.geometry import box

from edge.analytics.handover import HandoverCounts
from edge.config import NodeConfig, parse_config
from edge.events import Envelope, EventStamper, IdSource
from edge.handover_messages import HandoverMessage
from edge.mqtt_common import BrokerAddress
from edge.node.handover_transport import HandoverTransport
from edge.pipeline import EdgePipeline
from edge.sim.scenarios import Scenario
from edge.sim.source import SimulatedNode
from edge.store_areas import BoxLayout, propose_areas

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT_S = 5.0
"""How long a step waits for its hand-over messages to reach the neighbours through the broker."""


class HandoverDeliveryError(RuntimeError):
    """Hand-over messages published through the broker did not arrive in time."""


def split_store(
    config: NodeConfig, boxes: int, overlap_m: float = 2.0, store_id: str | None = None
) -> list[NodeConfig]:
    """The store of `config` as `boxes` node configurations (node-a, node-b, ...), one area each.

    `store_id`: the store's id in the boxes' configurations (default: the config's). Simulated runs sharing
    one broker each take an id of their own, so that their hand-over topics stay apart."""
    areas = propose_areas(config.floor.size_m, [car.browse_zone_m for car in config.cars], boxes)
    base = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    out: list[NodeConfig] = []
    for node_id, _ in areas:
        data: dict[str, Any] = dict(base)
        data["node_id"] = node_id
        data["store_id"] = store_id or config.store_id
        data["floor"] = {
            **base["floor"],
            "areas": [{"node_id": n, "polygon_m": [list(p) for p in poly]} for n, poly in areas],
            "overlap_m": overlap_m,
        }
        out.append(parse_config(data, f"<{config.store_id} {node_id}>"))
    return out


def box_nodes(configs: list[NodeConfig], scenario: Scenario, seed: int) -> list[SimulatedNode]:
    """One simulated box per configuration over one shared simulated store (the same people), each
    camera seeing only its box's area and overlap strip."""
    nodes: list[SimulatedNode] = []
    for k, cfg in enumerate(configs):
        layout = _layout(cfg)
        # Beyond the floor plan's edges (outside a door) the box sees what its cameras see.
        width, depth = cfg.floor.size_m
        outside = box(-10, -10, width + 10, depth + 10).difference(box(0, 0, width, depth))
        view = layout.seen_area().union(outside.intersection(layout.seen_area().buffer(10)))
        shared = nodes[0].sim if nodes else None
        nodes.append(SimulatedNode(cfg, scenario, seed, shared=shared, view_m=view, box_index=k + 1))
    return nodes


def _layout(cfg: NodeConfig) -> BoxLayout:
    areas = [(a.node_id, a.polygon_m) for a in cfg.floor.areas]
    return BoxLayout.of(cfg.node_id, areas, cfg.floor.overlap_m)


@dataclass
class BoxesRun:
    """What the boxes sent together, and what their hand-over did."""

    events: list[Envelope]
    handover: HandoverCounts
    messages: int = 0
    """Hand-over messages that went through the broker."""
    per_node: dict[str, dict[str, int]] = field(default_factory=dict)


def run_boxes(nodes: list[SimulatedNode], end_s: float, seed: int, broker_url: str) -> BoxesRun:
    """Every event the boxes' real pipelines emit from 0 to `end_s`, with hand-overs through the broker at
    `broker_url`, sorted by time."""
    pipelines: list[EdgePipeline] = []
    transports: list[HandoverTransport] = []
    try:
        for k, node in enumerate(nodes):
            cfg = node.config
            stamper = EventStamper(cfg.store_id, cfg.node_id, IdSource(seed * 1009 + k + 1))
            pipelines.append(EdgePipeline(cfg, stamper))
            # A client id of its own, so that evaluations running side by side on one broker do not
            # take over each other's sessions.
            client_id = f"sim-{cfg.node_id}-handover-{uuid.uuid4().hex[:12]}"
            neighbours = sorted(_layout(cfg).neighbours)
            transport = HandoverTransport(
                cfg.broker, cfg.store_id, cfg.node_id, neighbours, url=broker_url, client_id=client_id
            )
            transport.start()
            transports.append(transport)
        return _run(nodes, pipelines, transports, end_s)
    finally:
        for transport in transports:
            transport.stop()


def _run(
    nodes: list[SimulatedNode],
    pipelines: list[EdgePipeline],
    transports: list[HandoverTransport],
    end_s: float,
) -> BoxesRun:
    fps = max(cam.fps for cam in nodes[0].config.cameras)
    start = nodes[0].start_utc
    events: list[Envelope] = []
    messages = 0
    index = {node.config.node_id: k for k, node in enumerate(nodes)}
    for steps in zip(*(node.batches(fps, end_s) for node in nodes), strict=True):
        t_s = steps[0][0]
        sent: dict[int, int] = {}
        for k, (pipeline, (_, detections)) in enumerate(zip(pipelines, steps, strict=True)):
            events += pipeline.process(start + timedelta(seconds=t_s), detections)
            handover = pipeline.analytics.handover
            assert handover is not None  # every box of a split store has an area
            outgoing = handover.take_outgoing()
            if outgoing:
                transports[k].publish(outgoing)
                for message in outgoing:
                    receiver = index[message.to_node]
                    sent[receiver] = sent.get(receiver, 0) + 1
        for receiver, expected in sent.items():
            got = _collect(transports[receiver], expected)
            messages += len(got)
            handover = pipelines[receiver].analytics.handover
            assert handover is not None
            for message in got:
                handover.receive(message)
    end = start + timedelta(seconds=end_s)
    for pipeline in pipelines:
        events += pipeline.flush(end, "shutdown")
    total = HandoverCounts()
    per_node: dict[str, dict[str, int]] = {}
    for pipeline in pipelines:
        handover = pipeline.analytics.handover
        assert handover is not None
        per_node[pipeline.config.node_id] = handover.counts.as_dict()
        for name, value in handover.counts.as_dict().items():
            setattr(total, name, getattr(total, name) + value)
    events.sort(key=lambda e: (e.ts, e.node_id, e.seq))
    return BoxesRun(events, total, messages, per_node)


def _collect(transport: HandoverTransport, expected: int) -> list[HandoverMessage]:
    got: list[HandoverMessage] = []
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while len(got) < expected:
        left = deadline - time.monotonic()
        if left <= 0:
            raise HandoverDeliveryError(
                f"{transport.node_id}: {len(got)} of {expected} hand-over messages arrived through "
                f"{transport.broker.url} within {DELIVERY_TIMEOUT_S:g} s"
            )
        got += transport.received(timeout_s=left)
    return got


def reachable(url: str, timeout_s: float = 1.0) -> bool:
    """True when something listens at the broker URL's host and port."""
    address = BrokerAddress.parse(url)
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout_s):
            return True
    except OSError:
        return False


@contextmanager
def private_broker() -> Iterator[str]:
    """The system's Mosquitto on a free local port for the length of a run (no broker at the configured
    URL); `HandoverDeliveryError` when Mosquitto is not installed."""
    binary = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )
    if binary is None:
        raise HandoverDeliveryError(
            "no broker reachable and no mosquitto installed: pass --broker mqtt://HOST:PORT"
        )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n", encoding="utf-8"
        )
        proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            url = f"mqtt://127.0.0.1:{port}"
            deadline = time.monotonic() + 10.0
            while not reachable(url, 0.2):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise HandoverDeliveryError(f"mosquitto did not start on port {port}")
                time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def run_store_id(store_id: str) -> str:
    """A store id of its own for one simulated run (`store_id` and 8 random hex digits)."""
    return f"{store_id[:55]}-{uuid.uuid4().hex[:8]}"


__all__ = [
    "BoxesRun",
    "HandoverDeliveryError",
    "box_nodes",
    "private_broker",
    "reachable",
    "run_boxes",
    "run_store_id",
    "split_store",
]
