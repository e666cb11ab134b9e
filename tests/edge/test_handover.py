"""Two edge boxes sharing one store: visits handed over at their boundary through a real broker.

The test store (showroom_builders: 20 x 22 m, door at y = 20 between x = 8 and 12, a car in the west, the
staff desk in the north-east) is split at x = 12: node-a owns the west (the door and the car), node-b the
east (the desk); each box's cameras see 2 m past the boundary. People walk exact floor paths; each box
tracks them only where its cameras see them (a new track each time they come into its view).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from node_testkit import Mosquitto, Recorder, running_mosquitto
from showroom_builders import END, FPS, Scene, config_dict, hidden, line, stay

from edge.analytics.handover import Handover
from edge.analytics.showroom import ShowroomAnalytics
from edge.config import parse_config
from edge.events import Envelope, EventStamper, Heartbeat, IdSource, parse_event
from edge.handover_messages import HandoverMessage, handover_schema, parse_handover
from edge.node.handover_transport import PublisherHandoverTransport
from edge.node.mqtt import MqttPublisher
from edge.node.outbox import Outbox
from edge.node.runtime import NodeRuntime, RuntimeOptions
from edge.tracking.base import TrackerStep
from vision_models.arrays import XY

REPO = Path(__file__).resolve().parents[2]
BOUNDARY_X = 12.0
OVERLAP_M = 2.0
OUT = (10.0, 21.5)
DOOR_IN = (10.0, 18.0)
Path_ = Sequence[XY | None]


def box_config(node_id: str) -> dict[str, Any]:
    data = config_dict(node_id=node_id)
    data["floor"] = {
        "size_m": [20, 22],
        "areas": [
            {"node_id": "node-a", "polygon_m": [[0, 0], [BOUNDARY_X, 0], [BOUNDARY_X, 22], [0, 22]]},
            {"node_id": "node-b", "polygon_m": [[BOUNDARY_X, 0], [20, 0], [20, 22], [BOUNDARY_X, 22]]},
        ],
        "overlap_m": OVERLAP_M,
    }
    return data


def sees(node_id: str, xy: XY) -> bool:
    """What each box's cameras see: its area and the strip past the boundary (and the street outside)."""
    if node_id == "node-a":
        return xy[0] <= BOUNDARY_X + OVERLAP_M
    return xy[0] >= BOUNDARY_X - OVERLAP_M


class Box:
    """One edge box: its analytics (driven by `Scene`) and its hand-over link through the broker, on its
    publisher's connection as in a node."""

    def __init__(self, node_id: str, seed: int, broker: Mosquitto, folder: Path) -> None:
        self.node_id = node_id
        self.config = parse_config(box_config(node_id))
        self.scene = Scene(config=self.config)
        self.scene.analytics = ShowroomAnalytics(
            self.config, EventStamper("test-store", node_id, IdSource(seed))
        )
        self.broker = broker
        self.folder = folder
        self.transport: PublisherHandoverTransport | None = None
        self.online = True
        self._track: dict[int, int] = {}  # person -> current track id in this box
        self._next = 100 if node_id == "node-a" else 500
        self.connect()

    @property
    def handover(self) -> Handover:
        handover = self.scene.analytics.handover
        assert handover is not None
        return handover

    def connect(self) -> None:
        neighbours = ["node-b" if self.node_id == "node-a" else "node-a"]
        outbox = Outbox(self.folder / f"{self.node_id}.sqlite", 10_000_000)
        publisher = MqttPublisher(
            self.config.broker, outbox, store_id="test-store", node_id=self.node_id, url=self.broker.url
        )
        self.transport = PublisherHandoverTransport(publisher, neighbours)
        publisher.start()
        self.transport.start()

    def disconnect(self) -> None:
        assert self.transport is not None
        self.transport.stop()
        self.transport.publisher.stop(drain_timeout_s=0)
        self.transport.publisher.outbox.close()
        self.transport = None

    def frame(self, people: dict[int, XY | None]) -> dict[int, list[XY | str]]:
        """This box's one-frame track positions for the people's floor positions."""
        out: dict[int, list[XY | str]] = {}
        for person, xy in people.items():
            visible = xy is not None and sees(self.node_id, xy)
            tid = self._track.get(person)
            if visible and xy is not None:
                if tid is None:
                    tid = self._track[person] = self._next
                    self._next += 1
                out[tid] = [xy]
            elif tid is not None:
                out[tid] = [END]
                del self._track[person]
        return out

    def visitor_of(self, person: int) -> str | None:
        tid = self._track.get(person)
        return None if tid is None else self.scene.analytics.visitor_of(tid)


class Store:
    """Two boxes in lock step: each frame both step, then their hand-over messages cross the broker."""

    def __init__(self, broker: Mosquitto, folder: Path) -> None:
        self.a = Box("node-a", 1, broker, folder)
        self.b = Box("node-b", 2, broker, folder)
        self.sent: list[HandoverMessage] = []

    @property
    def boxes(self) -> tuple[Box, Box]:
        return self.a, self.b

    def walk(self, paths: dict[int, Path_]) -> None:
        """Each person's floor position per frame, in lock step."""
        n = max(len(p) for p in paths.values())
        for k in range(n):
            # A person whose path is done stays where it ended (None: gone).
            people = {person: path[min(k, len(path) - 1)] for person, path in paths.items()}
            self.step(people)

    def step(self, people: dict[int, XY | None]) -> None:
        for box in self.boxes:
            frame = box.frame(people) if box.online else {}
            if frame:
                box.scene.play(frame)
                continue
            box.scene.t += timedelta(seconds=1 / FPS)
            if box.online:  # nobody in view; a box that is off sees nothing and says nothing
                box.scene.events += box.scene.analytics.step(box.scene.t, TrackerStep([], []))
        for sender, receiver in ((self.a, self.b), (self.b, self.a)):
            outgoing = sender.handover.take_outgoing()
            if not outgoing:
                continue
            assert sender.transport is not None
            sender.transport.publish(outgoing)
            self.sent += outgoing
            if receiver.online:
                assert receiver.transport is not None
                got: list[HandoverMessage] = []
                while len(got) < len(outgoing):
                    more = receiver.transport.received(timeout_s=5.0)
                    assert more, f"{len(outgoing) - len(got)} hand-over messages never arrived"
                    got += more
                for message in got:
                    receiver.handover.receive(message)

    def events(self) -> list[Envelope]:
        return self.a.scene.events + self.b.scene.events

    def of_type(self, kind: str) -> list[Any]:
        return [e for e in self.events() if getattr(e, "type", None) == kind]

    def close(self) -> None:
        for box in self.boxes:
            if box.transport is not None:
                box.disconnect()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with running_mosquitto(tmp_path, persistence=False) as broker:
        two = Store(broker, tmp_path)
        try:
            yield two
        finally:
            two.close()


def come_in(to: XY, seconds: float = 6, x: float = 10.0) -> list[XY | None]:
    """Through the door at `x`, then on to `to`."""
    return [*line((x, OUT[1]), (x, DOOR_IN[1]), 3), *line((x, DOOR_IN[1]), to, seconds)]


def go_out(frm: XY, seconds: float = 6) -> list[XY | None]:
    return [*line(frm, DOOR_IN, seconds), *line(DOOR_IN, OUT, 3), None]


def test_a_visitor_who_crosses_the_boundary_and_back_is_one_visit(store: Store) -> None:
    east = (16.0, 10.0)
    store.walk({1: [*come_in((8.0, 10.0)), *line((8.0, 10.0), east, 6), *stay(east, 10)]})
    visitor = store.b.visitor_of(1)
    assert visitor is not None, "node-b did not adopt the visit"
    store.walk({1: [*line(east, (8.0, 12.0), 6), *go_out((8.0, 12.0)), None, None]})

    (started,) = store.of_type("visit.started")
    (ended,) = store.of_type("visit.ended")
    assert started.node_id == "node-a" and ended.node_id == "node-a"  # the door is node-a's
    assert started.visitor_id == ended.visitor_id == visitor
    assert ended.end_reason == "door" and ended.duration_s > 30
    assert {e.visitor_id for e in store.events() if hasattr(e, "visitor_id")} == {visitor}
    a, b = store.a.handover.counts, store.b.handover.counts
    assert (a.offered, a.taken, a.adopted) == (1, 1, 1)
    assert (b.offered, b.taken, b.adopted) == (1, 1, 1)
    assert a.lost_at_boundary == b.lost_at_boundary == 0
    kinds = [m.type for m in store.sent]
    assert kinds == ["handover.offer", "handover.taken", "handover.offer", "handover.taken"]
    print(f"hand-over messages: {len(store.sent)}, visit {ended.duration_s:.1f} s")


def test_a_visitor_who_turns_back_in_the_strip_stays_with_the_box_they_never_left(store: Store) -> None:
    edge_of_b = (BOUNDARY_X + 1.5, 10.0)  # past the hysteresis (1 m), in node-b's area and node-a's view
    store.walk(
        {1: [*come_in((8.0, 10.0)), *line((8.0, 10.0), edge_of_b, 3), *line(edge_of_b, (8.0, 10.0), 3)]}
    )
    store.walk({1: [*go_out((8.0, 10.0)), None]})
    (ended,) = store.of_type("visit.ended")
    assert ended.node_id == "node-a" and ended.end_reason == "door"
    a = store.a.handover.counts
    b = store.b.handover.counts
    assert a.offered == 1 and a.lost_at_boundary == 0
    # Either node-b took the visit and gave it back, or node-a withdrew it before node-b saw them.
    assert a.withdrawn + a.adopted == 1
    assert b.adopted == b.offered  # what node-b took, it handed back
    assert len(store.of_type("visit.started")) == 1


def test_a_visitor_who_walks_out_by_the_neighbours_door_leaves_no_visit_on_the_street(store: Store) -> None:
    """node-b sees the street past node-a's door (x >= 10). A visitor of node-b who walks out by that door
    and on along the street past the hysteresis must not be offered to node-a from out there: node-a would
    give the visit to the next person walking in at that spot, whose own visit would never start."""
    east = (16.0, 10.0)
    store.walk({1: [*come_in((8.0, 10.0)), *line((8.0, 10.0), east, 6), *stay(east, 10)]})
    first = store.b.visitor_of(1)
    assert first is not None, "node-b did not adopt the visit"
    doorway, street, waits = (11.2, 18.0), (11.2, 21.2), (10.4, 20.8)  # waits: 1.6 m past the boundary
    walk_out = [*line(east, doorway, 6), *line(doorway, street, 3), *line(street, waits, 1), *stay(waits, 12)]
    steps = len(walk_out) - len(stay(waits, 12))
    store.walk(
        {1: [*walk_out, None], 2: [*hidden(steps / FPS), *come_in((8.0, 14.0), x=10.8), *stay((8, 14), 5)]}
    )

    started = store.of_type("visit.started")
    assert len(started) == 2, "the visitor walking in took over the visit of the one who walked out"
    second = store.a.visitor_of(2)
    assert second is not None and second != first
    ended = {e.visitor_id: e for e in store.of_type("visit.ended")}
    assert ended[first].node_id == "node-b" and ended[first].end_reason == "door" and ended[first].door_id
    assert store.b.handover.counts.offered == 0  # nothing offered from the street


def test_a_visitor_talking_with_staff_across_the_boundary_is_received(store: Store) -> None:
    """A visit held by node-b, its visitor talking for 45 s with a staff member who stands on node-a's side
    of the boundary (too near it to be handed over, but in node-b's view): node-a knows them as staff and
    points them out, so node-b counts the reception."""
    east = (16.0, 10.0)
    store.walk({1: [*come_in((8.0, 10.0)), *line((8.0, 10.0), east, 6), *stay(east, 10)]})
    visitor = store.b.visitor_of(1)
    assert visitor is not None, "node-b did not adopt the visit"
    talk_staff, talk_visitor = (11.3, 6.0), (12.6, 6.0)  # 0.7 m and 0.6 m from the boundary, 1.3 m apart
    staff = [*line((17.5, 2.5), (6.0, 3.0), 10), *line((6.0, 3.0), talk_staff, 5), *stay(talk_staff, 45)]
    store.walk({3: staff, 1: [*stay(east, 10), *line(east, talk_visitor, 5), *stay(talk_visitor, 45)]})
    assert store.b.visitor_of(1) == visitor, "the visit left node-b"
    store.walk({1: [*go_out(talk_visitor), None], 3: [*stay(talk_staff, 10), None]})

    (ended,) = store.of_type("visit.ended")
    assert ended.visitor_id == visitor and ended.received, (
        "the talk with staff across the boundary was missed"
    )
    assert any(e.visitor_id == visitor for e in store.of_type("reception"))
    assert store.a.handover.counts.staff_offered >= 1 and store.b.handover.counts.staff_adopted >= 1


def test_two_visitors_crossing_side_by_side_in_opposite_directions_keep_their_visits(store: Store) -> None:
    west, east = (6.0, 10.0), (18.0, 11.0)
    # Two visitors come in; one walks over to the east side and waits there, the other waits west.
    to_east = [*come_in((12.0, 14.0), x=11.5), *line((12.0, 14.0), east, 6), *stay(east, 2)]
    store.walk({1: [*come_in(west), *stay(west, 14)], 2: to_east})
    x, y = store.a.visitor_of(1), store.b.visitor_of(2)
    assert x is not None and y is not None and x != y
    # They cross the boundary at the same moment, 1 m apart, in opposite directions.
    store.walk({1: line(west, (18.0, 10.0), 10), 2: line(east, (6.0, 11.0), 10)})
    store.walk({1: stay((18.0, 10.0), 3), 2: stay((6.0, 11.0), 3)})
    assert store.b.visitor_of(1) == x, "node-b gave the eastbound visitor someone else's visit"
    assert store.a.visitor_of(2) == y, "node-a gave the westbound visitor someone else's visit"
    store.walk({1: [*line((18.0, 10.0), (9.0, 14.0), 9), *go_out((9.0, 14.0))], 2: go_out((6.0, 11.0))})
    ended = {e.visitor_id: e for e in store.of_type("visit.ended")}
    assert set(ended) == {x, y} and len(store.of_type("visit.ended")) == 2
    assert all(e.end_reason == "door" for e in ended.values())
    assert len(store.of_type("visit.started")) == 2


def test_a_neighbour_offline_for_a_minute(store: Store) -> None:
    """Offers to it time out and are counted; the rest keeps counting; nothing is replayed twice."""
    east = (16.0, 10.0)
    store.walk({1: come_in((8.0, 10.0))})
    store.b.online = False
    store.b.disconnect()
    store.walk(
        {
            1: [*line((8.0, 10.0), east, 6), *stay(east, 20)],
            2: [*come_in((5.0, 14.0)), *stay((5.0, 14.0), 20)],
        }
    )
    missed = [m for m in store.sent if m.type == "handover.offer" and m.to_node == "node-b"]
    assert len(missed) == 1
    a = store.a.handover.counts
    assert a.lost_at_boundary == 1 and a.taken == 0
    lost = [e for e in store.of_type("visit.ended") if e.end_reason == "lost"]
    assert len(lost) == 1 and lost[0].node_id == "node-a"
    # node-a kept counting: the second visitor's visit started while node-b was away.
    assert len(store.of_type("visit.started")) == 2
    # A minute later node-b is back; its broker session was clean, and a replay of the old offer (a
    # broker that kept it) is refused: too late to take, and taken once at most.
    store.walk({1: stay(east, 30), 2: stay((5.0, 14.0), 30)})
    store.b.online = True
    store.b.connect()
    for message in missed:
        store.b.handover.receive(message)
    assert not store.b.handover.receive(missed[0]), "a message id was taken twice"
    store.walk({1: [*line(east, (8.0, 12.0), 6), *go_out((8.0, 12.0))], 2: go_out((5.0, 14.0))})
    b = store.b.handover.counts
    assert b.stale == 1 and b.adopted == 0 and b.repeated == 1
    # The visit that ended as lost is not ended again; the other one ends at the door.
    ends = store.of_type("visit.ended")
    assert len(ends) == 2 and sorted(e.end_reason for e in ends) == ["door", "lost"]


_FORBIDDEN = ("image", "jpeg", "png", "crop", "face", "embedding", "feature", "pixel", "thumb", "b64", "look")


def test_privacy_hand_over_messages_carry_contract_fields_only(store: Store, tmp_path: Path) -> None:
    """Every hand-over message on the wire is a valid contract message: known keys, short strings, no
    long runs of fractions, nothing named like image data."""
    recorded: list[tuple[str, bytes]] = []
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, msg: recorded.append((msg.topic, bytes(msg.payload)))
    client.connect("127.0.0.1", store.a.broker.port)
    client.subscribe("showroom/v1/test-store/+/handover", qos=1)
    client.loop_start()
    try:
        east = (16.0, 10.0)
        store.walk({1: [*come_in((8.0, 10.0)), *line((8.0, 10.0), east, 6), *stay(east, 5)]})
        store.walk({1: [*line(east, (8.0, 12.0), 6), *go_out((8.0, 12.0))]})
        store.walk({3: [(17.5, 2.5), *line((17.5, 2.5), (6.0, 2.5), 8)]})  # a staff member from the desk
        deadline = 50
        while len(recorded) < len(store.sent) and deadline:
            store.walk({9: [None]})
            deadline -= 1
    finally:
        client.loop_stop()
        client.disconnect()
    assert len(recorded) == len(store.sent) >= 5
    assert {"handover.offer", "handover.taken"} <= {m.type for m in store.sent}
    assert any(not m.is_visit for m in store.sent), "the staff member was not handed over"
    allowed = set(handover_schema()["properties"]) | {"car_id", "entered_at", "last_in"}
    for topic, payload in recorded:
        parse_handover(topic, payload)  # a valid hand-over message on its sender's topic, or this raises
        data = json.loads(payload)
        assert len(payload) <= 2048
        for key, value in _items(data):
            assert key in allowed, f"unexpected field {key}"
            assert not any(word in key.lower() for word in _FORBIDDEN), key
            if isinstance(value, str):
                assert len(value) <= 64 and not re.search(r"[A-Za-z0-9+/=]{80,}", value)
            if isinstance(value, list):
                assert len(value) <= 16


def _items(value: object) -> list[tuple[str, object]]:
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in [(k, v), *_items(v)]]
    if isinstance(value, list):
        return [item for v in value for item in _items(v)]
    return []


def test_a_node_of_a_split_store_runs_its_hand_over_link_and_reports_it_in_heartbeats(tmp_path: Path) -> None:
    """The real node runtime on the simulated store's node-a (its neighbour node-b is not running): it
    connects its hand-over link, offers visitors who walk over to node-b's area, and its heartbeats carry
    the hand-over counts (offers nobody took end as lost at the boundary)."""
    data = yaml.safe_load((REPO / "examples" / "sim-store.yaml").read_text())
    data["outbox"] = {"path": str(tmp_path / "outbox.sqlite"), "max_mb": 50}
    data["floor"]["areas"] = [
        {"node_id": "node-a", "polygon_m": [[0, 0], [19.15, 0], [19.15, 20], [0, 20]]},
        {"node_id": "node-b", "polygon_m": [[19.15, 0], [30, 0], [30, 20], [19.15, 20]]},
    ]
    with running_mosquitto(tmp_path, persistence=False) as broker:
        recorder = Recorder(broker.port)
        assert recorder.wait_for(lambda: recorder.client.is_connected())
        recorder.client.subscribe("showroom/v1/+/+/handover", qos=1)
        data["broker"] = {"url": broker.url}
        config = parse_config(data)
        runtime = NodeRuntime(config, options=RuntimeOptions(heartbeat_s=1.0, realtime=False))
        runtime.run(duration_s=8.0)
        assert recorder.wait_for(lambda: len(recorder.payloads("heartbeat")) >= 2)
        recorder.close()
    beats = [parse_event(p) for p in recorder.payloads("heartbeat")]
    health = [b.handover for b in beats if isinstance(b, Heartbeat)]
    assert health and all(h is not None for h in health)
    last = health[-1]
    assert last is not None
    offers = [m for m in recorder.messages if m[0].endswith("/handover")]
    print(f"node-a alone: {last}; {len(offers)} hand-over messages on the broker")
    assert last.offered == len([m for m in offers if b'"handover.offer"' in m[1] and b'"s-' not in m[1]])
    assert last.taken == 0 and last.adopted == 0  # nobody answers: node-b is not running


def test_clock_offsets_between_boxes_are_tolerated(store: Store) -> None:
    """node-b's clock runs 20 s fast (its heartbeat's offset says so): offers keep their meaning."""
    store.b.scene.t += timedelta(seconds=20)
    store.b.handover.clock_offset_s = 20.0
    store.a.handover.clock_offset_s = 0.0
    east = (16.0, 10.0)
    store.walk({1: [*come_in((8.0, 10.0)), *line((8.0, 10.0), east, 6), *stay(east, 3)]})
    assert store.b.visitor_of(1) is not None
    b = store.b.handover.counts
    assert (b.adopted, b.stale, b.unmatched) == (1, 0, 0)
    store.walk({1: [*line(east, (8.0, 12.0), 6), *go_out((8.0, 12.0))]})
    assert store.a.handover.counts.adopted == 1
    (ended,) = store.of_type("visit.ended")
    assert ended.node_id == "node-a" and ended.end_reason == "door"
    # Without the offsets, the same offers would look 20 s old to node-b and 20 s early to node-a.
    offer = next(m for m in store.sent if m.type == "handover.offer" and m.to_node == "node-b")
    assert offer.clock_offset_s == 0.0
