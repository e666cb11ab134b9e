"""The event contract v1: round trips, strict rejection of junk and near misses, topics, ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge import events as ev
from edge.events import ContractError, EventStamper, IdSource, parse_event, to_json

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)


def make_stamper(seed: int = 1) -> EventStamper:
    return EventStamper("sh-pudong-01", "node-a", IdSource(seed))


def make_payload(kind: str = "visit.started", **overrides: Any) -> dict[str, Any]:
    """A valid wire payload of the given type, as a dict, with fields overridden."""
    stamper = make_stamper()
    vid = stamper.ids.visitor_id()
    fields: dict[str, dict[str, Any]] = {
        "visit.started": {"visitor_id": vid, "door_id": "main"},
        "zone.dwell": {
            "visitor_id": vid,
            "zone_id": "car-01",
            "entered_at": T0 - timedelta(seconds=30),
            "exited_at": T0,
            "dwell_s": 30.0,
        },
    }
    cls = ev.EVENT_TYPES[kind]
    data: dict[str, Any] = json.loads(to_json(stamper.stamp(cls, T0, **fields[kind])))
    data.update(overrides)
    return data


# --- round trips ------------------------------------------------------------------------------------

ts_strategy = st.datetimes(
    min_value=datetime(2020, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))]
    ),
)
seconds = st.floats(min_value=0, max_value=3600, allow_nan=False)


@st.composite
def any_event(draw: st.DrawFn) -> ev.Envelope:
    stamper = EventStamper(
        "store-1", "node-1", IdSource(draw(st.integers(0, 2**32))), draw(st.integers(0, 10**9))
    )
    ts = draw(ts_strategy)
    vid = stamper.ids.visitor_id()
    span = draw(seconds)
    kind = draw(st.sampled_from(sorted(ev.EVENT_TYPES)))
    start = ts - timedelta(seconds=span)
    per_kind: dict[str, dict[str, Any]] = {
        "visit.started": {"visitor_id": vid, "door_id": "main"},
        "visit.ended": {
            "visitor_id": vid,
            "door_id": "main",
            "started_at": start,
            "duration_s": span,
            "browsed": draw(st.booleans()),
            "entered_car": draw(st.booleans()),
            "received": draw(st.booleans()),
        },
        "zone.dwell": {
            "visitor_id": vid,
            "zone_id": "car-1",
            "entered_at": start,
            "exited_at": ts,
            "dwell_s": span,
        },
        "car.entry": {
            "visitor_id": vid,
            "car_id": "car-1",
            "entered_at": start,
            "exited_at": ts,
            "inside_s": span,
        },
        "reception": {"visitor_id": vid, "started_at": start, "duration_s": span},
        "heat": {
            "minute": ev.floor_minute(ts.astimezone(UTC)),
            "cell_m": 0.25,
            "cells": [
                [ix, iy, draw(st.floats(0.01, 600, allow_nan=False))]
                for ix, iy in draw(st.sets(st.tuples(st.integers(0, 200), st.integers(0, 200)), max_size=20))
            ],
            "occupancy_max": draw(st.integers(0, 100)),
        },
        "heartbeat": {
            "cameras": [
                {
                    "camera_id": "cam-1",
                    "fps": 5.0,
                    "target_fps": 5.0,
                    "inference_ms": 11.5,
                    "dropped_frames": 0,
                    "reconnects": 0,
                    "quality": "excellent",
                }
            ],
            "outbox_depth": draw(st.integers(0, 10**6)),
            "model_id": "rtmdet-nano-person",
            "software_version": "0.1.0",
            "uptime_s": span,
        },
        "status": {"status": draw(st.sampled_from(["online", "offline"]))},
    }
    return stamper.stamp(ev.EVENT_TYPES[kind], ts, **per_kind[kind])


@settings(max_examples=300, deadline=None)
@given(any_event())
def test_every_event_round_trips_through_the_wire_form(event: ev.Envelope) -> None:
    wire = to_json(event)
    back = parse_event(wire)
    assert back == event
    assert to_json(back) == wire
    data = json.loads(wire)
    assert data["schema"] == "showroom.v1"
    assert data["ts"].endswith("Z") and len(data["ts"]) == len("2026-11-23T10:00:00.000Z")
    assert ev.topic_for(back).endswith("/" + ev.KIND_OF_TYPE[data["type"]])


def test_every_payload_class_narrows_the_envelope_type_to_its_own() -> None:
    assert set(get_args(ev.EventType)) == set(ev.EVENT_TYPES) == set(ev.KIND_OF_TYPE)
    for name, cls in ev.EVENT_TYPES.items():
        assert cls.model_fields["type"].default == name
    event: ev.Envelope = parse_event(make_payload("zone.dwell"))
    assert event.type == "zone.dwell"  # typed on the envelope: no getattr needed for any payload


def test_the_wire_form_keeps_its_key_order() -> None:
    keys = list(json.loads(to_json(parse_event(make_payload("visit.started")))))
    assert keys == ["schema", "event_id", "seq", "store_id", "node_id", "ts", "type", "visitor_id", "door_id"]


def test_timestamps_are_normalised_to_utc_milliseconds() -> None:
    shanghai = timezone(timedelta(hours=8))
    data = make_payload(ts="2026-11-23T18:00:00.123456+08:00")
    event = parse_event(data)
    assert event.ts == datetime(2026, 11, 23, 10, 0, 0, 123000, tzinfo=UTC)
    assert event.ts.astimezone(shanghai).hour == 18
    assert json.loads(to_json(event))["ts"] == "2026-11-23T10:00:00.123Z"


# --- rejection --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"schema": "showroom.v2"}, "schema"),
        ({"schema": None}, "schema"),
        ({"colour": "red"}, "colour"),
        ({"ts": "2026-11-23T10:00:00"}, "ts"),
        ({"ts": "yesterday"}, "ts"),
        ({"seq": -1}, "seq"),
        ({"seq": "7"}, "seq"),
        ({"store_id": "Store 1"}, "store_id"),
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"event_id": "6f1c7a3e-8a7b-4c2d-9e5f-0a1b2c3d4e5f"}, "event_id"),
        ({"visitor_id": "alice"}, "visitor_id"),
        ({"type": "visit.teleported"}, "type"),
        ({"door_id": None}, "door_id"),
    ],
)
def test_near_miss_payloads_are_rejected_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ContractError) as info:
        parse_event(make_payload(**overrides))
    assert field in str(info.value)


def test_missing_field_is_named() -> None:
    data = make_payload()
    del data["door_id"]
    with pytest.raises(ContractError, match="door_id"):
        parse_event(data)


def test_orderings_are_checked() -> None:
    with pytest.raises(ContractError, match="before entered_at"):
        parse_event(make_payload("zone.dwell", exited_at="2026-11-23T09:00:00.000Z"))
    with pytest.raises(ContractError, match="dwell_s"):
        parse_event(make_payload("zone.dwell", dwell_s=31.0))
    with pytest.raises(ContractError, match="dwell_s"):
        parse_event(make_payload("zone.dwell", dwell_s=-1))
    with pytest.raises(ContractError, match="dwell_s"):
        parse_event(make_payload("zone.dwell", dwell_s=float("nan")))


def test_heat_cells_are_checked() -> None:
    stamper = make_stamper()
    base = {"minute": T0, "cell_m": 0.25, "occupancy_max": 2}
    stamper.stamp(ev.Heat, T0, cells=[[1, 2, 3.5]], **base)
    with pytest.raises(ValueError, match="appears twice"):
        stamper.stamp(ev.Heat, T0, cells=[[1, 2, 3.5], [1, 2, 1.0]], **base)
    with pytest.raises(ValueError, match="cells"):
        stamper.stamp(ev.Heat, T0, cells=[[-1, 2, 3.5]], **base)
    with pytest.raises(ValueError, match="start of a minute"):
        stamper.stamp(ev.Heat, T0, cells=[], **{**base, "minute": T0 + timedelta(seconds=5)})


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        b"null",
        b"[]",
        b"42",
        b'"text"',
        b"{",
        b"\xff\xfe",
        b"{}",
        b'{"schema": "showroom.v1"}',
        b"x" * 70_000,
    ],
)
def test_junk_is_rejected_with_a_reason(junk: bytes) -> None:
    with pytest.raises(ContractError) as info:
        parse_event(junk)
    assert str(info.value)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_any_byte_string_is_accepted_or_rejected_cleanly(data: bytes) -> None:
    try:
        event = parse_event(data)
    except ContractError:
        return
    assert isinstance(event, ev.Envelope)


# --- topics and ids ---------------------------------------------------------------------------------


def test_topics_are_built_and_parsed_in_one_place() -> None:
    name = ev.topic("sh-pudong-01", "node-a", "heat")
    assert name == "showroom/v1/sh-pudong-01/node-a/heat"
    assert ev.parse_topic(name) == ("sh-pudong-01", "node-a", "heat")
    assert ev.subscription("aggregators") == "$share/aggregators/showroom/v1/+/+/+"
    for bad in [
        "showroom/v1/a/b",
        "showroom/v2/a/b/events",
        "showroom/v1/A/b/events",
        "showroom/v1/a/b/video",
    ]:
        with pytest.raises(ContractError):
            ev.parse_topic(bad)
    with pytest.raises(ContractError):
        ev.topic("a/b", "node", "events")


def test_topic_must_match_payload() -> None:
    event = parse_event(make_payload())
    ev.check_topic_matches("showroom/v1/sh-pudong-01/node-a/events", event)
    with pytest.raises(ContractError, match="names other"):
        ev.check_topic_matches("showroom/v1/other/node-a/events", event)
    with pytest.raises(ContractError, match="kind"):
        ev.check_topic_matches("showroom/v1/sh-pudong-01/node-a/heat", event)


def test_event_ids_are_time_ordered_and_unique() -> None:
    ids = IdSource()
    stamps = [T0 + timedelta(milliseconds=i // 3) for i in range(3000)]
    made = [ids.event_id(ts) for ts in stamps]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert ev.event_id_time(made[-1]) == T0 + timedelta(milliseconds=999)


def test_seeded_ids_are_reproducible_and_unseeded_are_not() -> None:
    a, b = IdSource(7), IdSource(7)
    assert [a.event_id(T0), a.visitor_id()] == [b.event_id(T0), b.visitor_id()]
    assert IdSource().visitor_id() != IdSource().visitor_id()


def test_stamper_numbers_outbox_payloads_but_not_status() -> None:
    stamper = EventStamper("s1", "n1", IdSource(1), next_seq=41)
    first = stamper.stamp(ev.VisitStarted, T0, visitor_id=stamper.ids.visitor_id(), door_id="main")
    status = stamper.stamp(ev.Status, T0, status="online")
    second = stamper.stamp(ev.VisitStarted, T0, visitor_id=stamper.ids.visitor_id(), door_id="main")
    assert (first.seq, status.seq, second.seq) == (41, 41, 42)


def test_generated_json_schema_in_docs_is_current() -> None:
    on_disk = json.loads((REPO / "docs" / "event-contract-v1.schema.json").read_text())
    assert on_disk == json.loads(json.dumps(ev.json_schema())), (
        "docs/event-contract-v1.schema.json is stale: run "
        "`showroom edge schema --out docs/event-contract-v1.schema.json`"
    )


def test_no_contract_field_can_carry_an_image_or_embedding() -> None:
    """Privacy by construction: every string field is an id, an enum, a time or a bounded short text."""
    schema = ev.json_schema()
    for name, definition in schema["$defs"].items():
        for field_name, prop in definition.get("properties", {}).items():
            variants = prop.get("anyOf", [prop])
            for variant in variants:
                if variant.get("type") == "string":
                    bounded = "pattern" in variant or "enum" in variant or "const" in variant
                    bounded |= variant.get("format") == "date-time" or variant.get("maxLength", 10**9) <= 200
                    assert bounded, f"{name}.{field_name} is an unbounded string"
                assert variant.get("type") != "array" or "maxItems" in variant or field_name == "cells", (
                    f"{name}.{field_name} is an unbounded array"
                )
