"""Ingest: quarantine reasons, late and out-of-order events, sequence gaps, nodes, registry rebuilds."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.ingest import Ingestor, Message, merge_ranges
from aggregator.queries import Queries
from aggregator.registry import RegistryError, load_registry, parse_registry
from aggregator.storage import open_storage
from aggregator.synth import VisitPlan, funnel_day_plans, heat_event, stamper_for, visit_events
from aggregator.writer import to_messages
from edge.events import MAX_PAYLOAD_BYTES, CameraHealth, Envelope, Heartbeat, Status, to_json, topic_for
from tests.aggregator.conftest import NewDb

STORE = "sh-pudong-01"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def registry(tz: str = "Asia/Shanghai") -> dict[str, object]:
    return {
        "brands": [{"id": "aurora", "name": "Aurora"}],
        "stores": [
            {"store_id": STORE, "name": "Pudong", "brand": "aurora", "region": "east", "timezone": tz}
        ],
    }


def msgs(events: list[Envelope], received_at: datetime = NOW) -> list[Message]:
    return [Message(topic_for(e), to_json(e), received_at) for e in events]


@pytest.fixture
def ing(db: str) -> Ingestor:
    i = Ingestor(open_storage(db))
    i.load_registry(parse_registry(registry()))
    return i


def good_event() -> Envelope:
    return visit_events(stamper_for(STORE), VisitPlan(NOW, 300.0))[0]


@pytest.mark.parametrize(
    ("topic", "payload", "code"),
    [
        ("showroom/v1/sh-pudong-01/node-a/events", b"{not json", "not_json"),
        ("showroom/v1/sh-pudong-01/node-a/events", b"[1, 2]", "not_json"),
        ("showroom/v1/sh-pudong-01/node-a/events", b"\xff\xfe\x00", "not_utf8"),
        ("showroom/v1/sh-pudong-01/node-a/events", b'{"schema": "showroom.v2"}', "schema"),
        ("showroom/v1/sh-pudong-01/node-a/events", b"x" * (MAX_PAYLOAD_BYTES + 1), "oversize"),
        ("showroom/v1/other-store/node-a/events", None, "topic_mismatch"),
        ("showroom/v1/sh-pudong-01/node-a/heat", None, "topic_mismatch"),
        ("random/topic", None, "bad_topic"),
    ],
)
def test_everything_that_fails_is_quarantined_with_its_reason(
    ing: Ingestor, db: str, topic: str, payload: bytes | None, code: str
) -> None:
    body = payload if payload is not None else to_json(good_event())
    result = ing.ingest([Message(topic, body, NOW)])
    assert (result.stored, result.quarantined, result.reasons) == (0, 1, {code: 1})
    with Queries.open(db) as q:
        [row] = q.quarantine()
        counters = q.counters()
    assert row.topic == topic and row.reason_code == code and row.reason
    assert row.payload_size == len(body) and row.payload_head == body[:4096]
    assert counters["quarantined"] == 1 and counters[f"quarantined.{code}"] == 1


def test_wrong_types_are_quarantined_naming_the_field(ing: Ingestor, db: str) -> None:
    e = good_event()
    data = json.loads(to_json(e))
    data["seq"] = "7"
    result = ing.ingest([Message(topic_for(e), json.dumps(data).encode(), NOW)])
    assert result.reasons == {"invalid": 1}
    with Queries.open(db) as q:
        assert "seq" in q.quarantine()[0].reason


def test_day_late_and_out_of_order_events_land_in_their_day_and_hour(ing: Ingestor, db: str) -> None:
    # Shanghai is UTC+8: 2026-11-22 15:30 UTC is 23:30 local on the 22nd.
    stamper = stamper_for(STORE)
    late_visit = visit_events(
        stamper, VisitPlan(datetime(2026, 11, 22, 15, 30, tzinfo=UTC), 1200.0, "car-01", 20.0)
    )
    today_visit = visit_events(stamper, VisitPlan(datetime(2026, 11, 23, 2, 0, tzinfo=UTC), 600.0))
    ing.ingest(msgs(today_visit))
    # The day-late visit arrives a day later, its end before its start.
    ing.ingest(msgs(list(reversed(late_visit)), received_at=NOW + timedelta(days=1)))
    with Queries.open(db) as q:
        d22 = q.funnel(STORE, date(2026, 11, 22))
        d23 = q.funnel(STORE, date(2026, 11, 23))
        hours22 = {h.local_hour: h.visitors for h in q.hourly_traffic(STORE, date(2026, 11, 22))}
        hours23 = {h.local_hour: h.visitors for h in q.hourly_traffic(STORE, date(2026, 11, 23))}
        cars = q.car_ranking(STORE, date(2026, 11, 22), date(2026, 11, 22))
    assert (d22.visitors, d22.car_browsers) == (1, 1)
    assert d22.median_visit_s == pytest.approx(1200.0)
    assert (d23.visitors, d23.car_browsers) == (1, 0)
    assert hours22[23] == 1 and sum(hours22.values()) == 1
    assert hours23[10] == 1 and sum(hours23.values()) == 1
    assert [(c.car_id, c.browsers) for c in cars] == [("car-01", 1)]


def test_a_start_that_moves_its_visit_to_another_day_refreshes_both_days(ing: Ingestor, db: str) -> None:
    # The end arrives first and places the visit by its started_at: 16:00:30 UTC, 00:00:30 on the 23rd in
    # Shanghai. The start (authoritative, 15:59:30 UTC: 23:59:30 on the 22nd) then moves it to the 22nd; the
    # 23rd must lose it again, though no event of that day came with the start.
    start, end = visit_events(
        stamper_for(STORE), VisitPlan(datetime(2026, 11, 22, 15, 59, 30, tzinfo=UTC), 120.0)
    )
    moved = end.model_copy(
        update={"started_at": datetime(2026, 11, 22, 16, 0, 30, tzinfo=UTC), "duration_s": 60.0}
    )
    ing.ingest(msgs([moved]))
    with Queries.open(db) as q:
        assert q.funnel(STORE, date(2026, 11, 23)).visitors == 1
    ing.ingest(msgs([start]))
    with Queries.open(db) as q:
        assert q.funnel(STORE, date(2026, 11, 22)).visitors == 1
        assert q.funnel(STORE, date(2026, 11, 23)).visitors == 0


def test_visit_counted_from_its_end_when_the_start_was_lost(ing: Ingestor, db: str) -> None:
    events = visit_events(stamper_for(STORE), VisitPlan(NOW, 300.0, received=True))
    ing.ingest(msgs(events[1:]))
    with Queries.open(db) as q:
        f = q.funnel(STORE, date(2026, 11, 23))
        assert (f.visitors, f.receptions) == (1, 1)
        [node] = q.nodes(now=NOW)
        assert node.seq_missing == 0 and node.seq_received == len(events) - 1  # seq 0 was never seen


def test_sequence_gaps_are_detected_and_closed_by_late_arrivals(ing: Ingestor, db: str) -> None:
    stamper = stamper_for(STORE)
    events = [e for i in range(5) for e in visit_events(stamper, VisitPlan(NOW + timedelta(minutes=i), 60.0))]
    assert [e.seq for e in events] == list(range(10))
    ing.ingest(msgs([e for e in events if e.seq not in (3, 4, 7)]))
    with Queries.open(db) as q:
        [node] = q.nodes(now=NOW)
        assert (node.seq_missing, node.seq_max) == (3, 9)
        assert q.seq_gaps(STORE, "node-a") == [(3, 4), (7, 7)]
    ing.ingest(msgs([e for e in events if e.seq in (3, 4, 7)]))
    with Queries.open(db) as q:
        assert q.nodes(now=NOW)[0].seq_missing == 0 and q.seq_gaps(STORE, "node-a") == []


def test_merge_ranges() -> None:
    assert merge_ranges([(0, 4), (8, 9)], [5, 7, 12]) == [(0, 5), (7, 9), (12, 12)]
    assert merge_ranges([], [3, 1, 2, 2]) == [(1, 3)]


def test_node_heartbeat_status_and_offline(ing: Ingestor, db: str) -> None:
    stamper = stamper_for(STORE)
    cam = CameraHealth(
        camera_id="cam-west",
        fps=4.9,
        target_fps=5,
        inference_ms=31.5,
        dropped_frames=2,
        reconnects=0,
        quality="fair",
    )
    hb = stamper.stamp(
        Heartbeat,
        NOW,
        cameras=[cam],
        outbox_depth=12,
        oldest_unsent_age_s=3.5,
        model_id="rtmdet-nano-person",
        software_version="0.1.0",
        uptime_s=3600.0,
        calibration_error_m={"cam-west": 0.08},
    )
    older = stamper.stamp(
        Heartbeat,
        NOW - timedelta(minutes=5),
        cameras=[],
        outbox_depth=99,
        model_id="m",
        software_version="0",
        uptime_s=1,
    )
    online = stamper.stamp(Status, NOW - timedelta(minutes=1), status="online")
    ing.ingest(msgs([hb, older, online], received_at=NOW))
    with Queries.open(db) as q:
        [n] = q.nodes(now=NOW + timedelta(seconds=30))
        assert n.online and n.status == "online" and n.outbox_depth == 12
        assert n.cameras[0].camera_id == "cam-west" and n.cameras[0].inference_ms == pytest.approx(31.5)
        assert n.calibration_error_m == {"cam-west": pytest.approx(0.08)}
        assert not q.nodes(now=NOW + timedelta(minutes=5))[0].online  # silent for too long
        assert [s.store_id for s in q.silent_stores(NOW + timedelta(hours=2), timedelta(hours=1))] == [STORE]
        assert q.silent_stores(NOW + timedelta(minutes=2), timedelta(hours=1)) == []
    ing.ingest(msgs([stamper.stamp(Status, NOW + timedelta(seconds=10), status="offline")]))
    with Queries.open(db) as q:
        n = q.nodes(now=NOW + timedelta(seconds=20))[0]
        assert n.status == "offline" and not n.online


def test_a_last_will_received_after_online_takes_the_node_offline(ing: Ingestor, db: str) -> None:
    """A node's last will is fixed (and stamped) when it connects, before that connection's "online":
    received live after it, it is the node's state; a new connection's "online" then wins again."""
    stamper = stamper_for(STORE)
    will = stamper.stamp(Status, NOW, status="offline")
    online = stamper.stamp(Status, NOW + timedelta(milliseconds=50), status="online")
    ing.ingest(msgs([online], received_at=NOW + timedelta(seconds=1)))
    ing.ingest(msgs([will], received_at=NOW + timedelta(minutes=3)))
    with Queries.open(db) as q:
        n = q.nodes(now=NOW + timedelta(minutes=3, seconds=1))[0]
        assert n.status == "offline" and not n.online
    again = stamper.stamp(Status, NOW + timedelta(minutes=4), status="online")
    ing.ingest(msgs([again], received_at=NOW + timedelta(minutes=4, seconds=1)))
    with Queries.open(db) as q:
        assert q.nodes(now=NOW + timedelta(minutes=4, seconds=2))[0].status == "online"


def test_heat_and_occupancy(ing: Ingestor, db: str) -> None:
    a, b = stamper_for(STORE, "node-a", 1), stamper_for(STORE, "node-b", 2)
    minute = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 local
    events = [
        heat_event(a, minute, [(0, 0, 30.0), (3, 2, 60.0)], 2),
        heat_event(a, minute + timedelta(minutes=1), [(3, 2, 15.0)], 1),
        heat_event(b, minute, [(100, 50, 45.0)], 3),
    ]
    ing.ingest(msgs(events))
    ing.ingest(msgs(events))  # redelivery adds nothing
    with Queries.open(db) as q:
        h = q.heatmap(STORE, date(2026, 11, 23), date(2026, 11, 23))
        hh = q.heatmap_hours(STORE, minute, minute + timedelta(hours=1))
        hours = {x.local_hour: x for x in q.hourly_traffic(STORE, date(2026, 11, 23))}
        occ = q.occupancy_now(STORE, now=minute + timedelta(minutes=2))
    assert h.cell_m == 0.25 and h.grid.shape == (51, 101)
    assert h.grid[2, 3] == pytest.approx(75.0) and h.grid[0, 0] == pytest.approx(30.0)
    assert h.total_person_s == pytest.approx(150.0) and hh.total_person_s == pytest.approx(150.0)
    assert hours[10].occupancy_max == 5  # node-a 2 + node-b 3 in the same minute
    assert occ.floor_occupancy == 1 and occ.floor_minute == minute + timedelta(minutes=1)


def test_registry_time_zone_change_rebuilds_rollups(ing: Ingestor, db: str) -> None:
    # 2026-11-23 02:00 UTC is the 23rd in Shanghai but the 22nd in New York.
    ing.ingest(
        msgs(visit_events(stamper_for(STORE), VisitPlan(datetime(2026, 11, 23, 2, 0, tzinfo=UTC), 60.0)))
    )
    with Queries.open(db) as q:
        assert q.funnel(STORE, date(2026, 11, 23)).visitors == 1
    assert ing.load_registry(parse_registry(registry("America/New_York"))) == [STORE]
    with Queries.open(db) as q:
        assert q.funnel(STORE, date(2026, 11, 23)).visitors == 0
        assert q.funnel(STORE, date(2026, 11, 22)).visitors == 1


def test_registry_reads_node_configs(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "showroom-shanghai-01.yaml"
    reg = tmp_path / "stores.yaml"
    reg.write_text(
        f"stores:\n  - {{store_id: sh-pudong-01, name: Pudong, brand: aurora, region: east, "
        f"node_configs: ['{example}']}}\n",
        encoding="utf-8",
    )
    [store] = load_registry(reg).stores
    assert store.timezone == "Asia/Shanghai" and store.floor_size_m == (36.0, 24.0) and len(store.cars) == 6
    shipped = load_registry(example.parent / "aggregator" / "stores.yaml")
    assert [s.store_id for s in shipped.stores] == ["sh-pudong-01", "bj-chaoyang-02"] and shipped.brands
    reg.write_text("stores:\n  - {store_id: x, name: X, brand: b, region: r}\n", encoding="utf-8")
    with pytest.raises(RegistryError, match="timezone"):
        load_registry(reg)
    reg.write_text(
        "stores:\n  - {store_id: x, name: X, brand: b, region: r, colour: red}\n", encoding="utf-8"
    )
    with pytest.raises(RegistryError, match="colour"):
        load_registry(reg)


def test_registry_names_what_is_wrong_in_a_node_config(tmp_path: Path) -> None:
    node = tmp_path / "node.yaml"
    reg = tmp_path / "stores.yaml"
    reg.write_text(
        "stores:\n  - {store_id: x, name: X, brand: b, region: r, node_configs: [node.yaml]}\n",
        encoding="utf-8",
    )
    node.write_text(
        "store_id: x\ntimezone: Asia/Shanghai\nfloor: {size_m: [20, 10]}\n"
        "cars: [{id: car-01, model_name: M, interior_zone_m: [[1, 1], [2, 1], [2, 2]]}]\n",
        encoding="utf-8",
    )
    with pytest.raises(
        RegistryError, match=r"node_configs: .*node.yaml: cars.0.browse_zone_m: Field required"
    ):
        load_registry(reg)
    node.write_text("store_id: x\ntimezone: Mars/Olympus\nfloor: {size_m: [20, 10]}\n", encoding="utf-8")
    with pytest.raises(RegistryError, match=r"timezone: .*unknown time zone 'Mars/Olympus'"):
        load_registry(reg)
    node.write_text("store_id: y\ntimezone: Asia/Shanghai\nfloor: {size_m: [20, 10]}\n", encoding="utf-8")
    with pytest.raises(RegistryError, match="is for store 'y', not 'x'"):
        load_registry(reg)
    node.write_text("store_id: x\ntimezone: Asia/Shanghai\nfloor: {size_m: [20, 10]}\n", encoding="utf-8")
    [store] = load_registry(reg).stores
    assert store.timezone == "Asia/Shanghai" and store.floor_size_m == (20.0, 10.0) and store.cars == ()


# -- order independence ---------------------------------------------------------------------------------

_DAY_EVENTS = [
    e
    for i, p in enumerate(
        funnel_day_plans(
            datetime(2026, 11, 22, 16, 0, tzinfo=UTC),
            8,
            6,
            2,
            3,
            cars=("car-01", "car-02"),
            seed=11,
            open_hours=(6, 9),
        )
    )
    for e in visit_events(stamper_for(STORE, seed=20 + i), p)
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(list(range(len(_DAY_EVENTS)))), cuts=st.lists(st.integers(1, 60), max_size=4))
def test_any_arrival_order_and_batching_gives_the_same_rollups(
    new_db: NewDb, order: list[int], cuts: list[int]
) -> None:
    db = new_db()
    ing = Ingestor(open_storage(db))
    ing.load_registry(parse_registry(registry()))
    shuffled = [_DAY_EVENTS[i] for i in order]
    bounds = sorted({0, len(shuffled), *(c for c in cuts if c < len(shuffled))})
    for a, b in itertools.pairwise(bounds):
        ing.ingest(msgs(shuffled[a:b]))
    with Queries.open(db) as q:
        f = q.funnel(STORE, date(2026, 11, 23))
        hours = [h.visitors for h in q.hourly_traffic(STORE, date(2026, 11, 23))]
        cars = [
            (c.car_id, c.browsers, c.entries)
            for c in q.car_ranking(STORE, date(2026, 11, 23), date(2026, 11, 23))
        ]
    ing.storage.close()
    new_db.release(db)
    assert (f.visitors, f.car_browsers, f.car_entrants, f.receptions) == (8, 6, 2, 3)
    assert sum(hours) == 8 and sorted(cars) == [("car-01", 3, 1), ("car-02", 3, 1)]


def test_receipt_times_are_stored_to_the_millisecond_each_message_its_own(db: str) -> None:
    """The MQTT writer keeps receipt times to the millisecond and lets messages of one millisecond share
    one time; every stored event still carries its own message's receipt time."""
    st_ = stamper_for("s-1", seed=3)
    events = visit_events(st_, VisitPlan(datetime(2026, 11, 23, 10, 0, tzinfo=UTC), 600.0, received=True))
    base = datetime(2026, 11, 23, 10, 20, tzinfo=UTC).timestamp()
    offsets_s = [0.0001, 0.0004, 0.0017, 0.0017, 1.25, 2.9999][: len(events)]
    raw = [(topic_for(e).encode(), to_json(e), base + off) for e, off in zip(events, offsets_s, strict=False)]
    messages = to_messages(raw)
    assert messages[0].received_at is messages[1].received_at  # same millisecond, one datetime
    assert [m.received_at.microsecond for m in messages] == [
        int(off * 1000) % 1000 * 1000 for off in offsets_s
    ]
    storage = open_storage(db)
    Ingestor(storage).ingest(messages)
    stored = {r[0]: r[3] for r in storage.raw_events()}
    for e, off in zip(events, offsets_s, strict=False):
        expected = datetime.fromtimestamp(base + off, UTC)
        assert (
            stored[e.event_id]
            == expected.strftime("%Y-%m-%dT%H:%M:%S.") + f"{expected.microsecond // 1000:03d}Z"
        )
