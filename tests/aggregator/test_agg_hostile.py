"""Hostile input against the one contract parser and the ingest path: each class of attack found in the
field is stored or quarantined with its named reason, never an internal error, never a crash."""

from __future__ import annotations

import json
import sqlite3
import tracemalloc
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator import ingest as ingest_module
from aggregator.ingest import Ingestor, Message
from aggregator.queries import Queries
from aggregator.registry import parse_registry
from aggregator.storage import open_storage
from aggregator.synth import VisitPlan, heat_event, stamper_for, visit_events
from edge.events import (
    MAX_NESTING,
    CameraHealth,
    ContractError,
    Envelope,
    Heartbeat,
    Reason,
    format_ts,
    parse_event,
    parse_payload,
    to_json,
    topic_for,
)
from showroom.cli import main

STORE = "sh-pudong-01"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
REASONS = {r.value for r in Reason}


def registry(tz: str = "Asia/Shanghai") -> dict[str, object]:
    return {
        "brands": [{"id": "aurora", "name": "Aurora"}],
        "stores": [
            {
                "store_id": STORE,
                "name": "Pudong",
                "brand": "aurora",
                "region": "east",
                "timezone": tz,
                "floor_size_m": [36, 24],
            }
        ],
    }


@pytest.fixture
def ing(db: str) -> Iterator[Ingestor]:
    i = Ingestor(open_storage(db))
    i.load_registry(parse_registry(registry()))
    yield i
    i.storage.close()


def execute(db: str, sql: str, params: tuple[object, ...]) -> None:
    """One statement run straight on the test database of either backend, as an older version might have."""
    if db.startswith("postgresql"):
        with psycopg.connect(db) as pg:
            pg.execute(sql.replace("?", "%s"), params)
    else:
        with closing(sqlite3.connect(db)) as lite, lite:
            lite.execute(sql, params)


def visit() -> list[Envelope]:
    return visit_events(stamper_for(STORE), VisitPlan(NOW, 300.0))


def wire(event: Envelope, **overrides: Any) -> bytes:
    """`event` on the wire with some fields replaced."""
    data = json.loads(to_json(event))
    data.update(overrides)
    return json.dumps(data).encode()


def heartbeat(**fields: Any) -> Heartbeat:
    cam = CameraHealth(
        camera_id="cam-1", fps=10.0, target_fps=10.0, inference_ms=30.0, dropped_frames=0, reconnects=0,
        quality="excellent",
    )  # fmt: skip
    base: dict[str, Any] = {
        "cameras": [cam],
        "outbox_depth": 0,
        "model_id": "m",
        "software_version": "1",
        "uptime_s": 10.0,
    }
    base.update(fields)
    return stamper_for(STORE).stamp(Heartbeat, NOW, **base)


def quarantined_as(ing: Ingestor, topic: str, payload: bytes) -> str:
    result = ing.ingest([Message(topic, payload, NOW)])
    assert result.stored == 0 and result.quarantined == 1, result
    [code] = result.reasons
    return code


EVENTS_TOPIC = f"showroom/v1/{STORE}/node-a/events"
HB_TOPIC = f"showroom/v1/{STORE}/node-a/heartbeat"
HEAT_TOPIC = f"showroom/v1/{STORE}/node-a/heat"


def nested(depth: int) -> bytes:
    return b'{"schema": "showroom.v1", "x": ' + b"[" * depth + b"]" * depth + b"}"


# --- one regression test per class of hostile input -----------------------------------------------


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        # NaN and Infinity, also in heartbeats (they were stored)
        (HB_TOPIC, wire(heartbeat()).replace(b'"uptime_s": 10.0', b'"uptime_s": NaN'), "not_finite"),
        (HB_TOPIC, wire(heartbeat(), calibration_error_m={"cam-1": float("inf")}), "not_finite"),
        (HB_TOPIC, wire(heartbeat(), memory_mb=float("-inf")), "not_finite"),
        # years 0, 1 and 9999 (stalled the writer; OverflowError became "internal")
        (EVENTS_TOPIC, wire(visit()[0], ts="0001-01-01T00:00:00.000Z"), "time_window"),
        (EVENTS_TOPIC, wire(visit()[0], ts="0001-01-01T00:00:00.000+05:00"), "time_window"),
        (EVENTS_TOPIC, wire(visit()[0], ts="9999-12-31T23:59:59.999Z"), "time_window"),
        (EVENTS_TOPIC, wire(visit()[0], ts="9999-12-31T23:59:59.999-05:00"), "time_window"),
        (EVENTS_TOPIC, wire(visit()[0], ts="0000-01-01T00:00:00.000Z"), "invalid"),
        (EVENTS_TOPIC, wire(visit()[0], ts=format_ts(NOW + timedelta(days=3))), "time_window"),
        (EVENTS_TOPIC, wire(visit()[0], ts=format_ts(NOW - timedelta(days=401))), "time_window"),
        # payloads without `schema` (stored by ingest, refused by parse_event)
        (
            EVENTS_TOPIC,
            json.dumps({k: v for k, v in json.loads(wire(visit()[0])).items() if k != "schema"}).encode(),
            "schema",
        ),
        # nesting under 64 KiB (RecursionError became "internal")
        (EVENTS_TOPIC, nested(MAX_NESTING + 1), "too_deep"),
        (EVENTS_TOPIC, nested(30_000), "too_deep"),
        (EVENTS_TOPIC, b"[" * 60_000, "too_deep"),
        # brackets inside strings do not nest
        (EVENTS_TOPIC, json.dumps({"schema": "showroom.v1", "x": "[" * 5000}).encode(), "invalid"),
        # U+0000 in a key or a text (PostgreSQL refuses it: it became "internal" there)
        (HB_TOPIC, wire(heartbeat(), calibration_error_m={"\u0000": 0.1}), "invalid"),
        (HB_TOPIC, wire(heartbeat(), software_version="1.0\u0000"), "invalid"),
        # ... and in a payload refused for another reason, whose message quotes the key (the quarantine row
        # itself could not be stored there)
        (HB_TOPIC, wire(heartbeat(), calibration_error_m={"\u0000": None}), "invalid"),
    ],
)
def test_hostile_payloads_are_quarantined_with_their_reason(
    ing: Ingestor, topic: str, payload: bytes, reason: str
) -> None:
    assert quarantined_as(ing, topic, payload) == reason
    with pytest.raises(ContractError) as err:
        parse_payload(payload, NOW)
    assert err.value.code == reason  # the same rule everywhere


def test_a_replay_reply_with_u0000_in_a_reason_is_quarantined(ing: Ingestor) -> None:
    """The reasons a node gives for what it cannot send again are kept as text (PostgreSQL refuses U+0000)."""
    reply = {
        "request_id": "r1",
        "from_seq": 1,
        "to_seq": 9,
        "replayed": 0,
        "unavailable": [[1, 9, "gone\u0000"]],
    }
    topic = f"showroom/v1/{STORE}/node-a/replay/reply"
    assert quarantined_as(ing, topic, json.dumps(reply).encode()) == "bad_replay_reply"
    reply["unavailable"] = [[1, 9, "outside node history"]]
    assert ing.ingest([Message(topic, json.dumps(reply).encode(), NOW)]).replay_replies == 1


def test_heat_cells_must_lie_on_the_stores_floor(ing: Ingestor) -> None:
    stamper = stamper_for(STORE)
    minute = NOW.replace(second=0) - timedelta(minutes=1)
    # 36 x 24 m at 0.25 m: 144 x 96 cells (one cell of slack)
    ok = heat_event(stamper, minute, [(0, 0, 5.0), (144, 96, 1.0)], 1)
    assert ing.ingest([Message(topic_for(ok), to_json(ok), NOW)]).stored == 1
    for cell in ((10_000, 10_000), (100_000, 100_000), (146, 0), (0, 98)):
        bad = heat_event(stamper, minute + timedelta(minutes=1), [(*cell, 1.0)], 1)
        assert quarantined_as(ing, HEAT_TOPIC, to_json(bad)) == "outside_floor"
    # a cell size that would multiply the grid is refused by the contract itself
    tiny = wire(ok, cell_m=1e-9, event_id=stamper.ids.event_id(NOW))
    assert quarantined_as(ing, HEAT_TOPIC, tiny) == "invalid"


def test_heat_of_a_store_outside_the_registry_is_bounded(ing: Ingestor) -> None:
    stamper = stamper_for("unknown-store")
    minute = NOW.replace(second=0) - timedelta(minutes=1)
    bad = heat_event(stamper, minute, [(10_000, 10_000, 1.0)], 1)
    result = ing.ingest([Message(topic_for(bad), to_json(bad), NOW)])
    assert result.reasons == {"outside_floor": 1}


def test_a_forged_seq_jump_is_quarantined_not_believed(ing: Ingestor, db: str) -> None:
    events = visit()
    assert ing.ingest([Message(topic_for(e), to_json(e), NOW) for e in events]).stored == len(events)
    forged = stamper_for(STORE, seed=9)
    forged.next_seq = 2**63 - 10
    [bad, *_] = visit_events(forged, VisitPlan(NOW, 60.0))
    assert quarantined_as(ing, EVENTS_TOPIC, to_json(bad)) == "seq_jump"
    with Queries.open(db) as q:
        [node] = q.nodes([STORE], now=NOW)
    assert node.seq_missing == 0  # the gap report does not believe it


def test_the_nodes_formatter_writes_four_digit_years() -> None:
    assert format_ts(datetime(1, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)) == "0001-01-02T03:04:05.006Z"
    assert format_ts(datetime(999, 12, 31, tzinfo=UTC)) == "0999-12-31T00:00:00.000Z"


def test_payloads_without_schema_are_handled_alike_everywhere(ing: Ingestor) -> None:
    data = json.loads(to_json(visit()[0]))
    del data["schema"]
    with pytest.raises(ContractError) as by_parse_event:
        parse_event(data)
    with pytest.raises(ContractError) as by_parse_payload:
        parse_payload(json.dumps(data).encode())
    assert by_parse_event.value.code == by_parse_payload.value.code == "schema"
    assert quarantined_as(ing, EVENTS_TOPIC, json.dumps(data).encode()) == "schema"


def test_unique_bad_topics_do_not_grow_the_ingester(ing: Ingestor) -> None:
    payload = to_json(visit()[0])
    evicted_before = ingest_module.TOPIC_CACHE.evictions

    def flood(start: int) -> None:
        for b in range(start, start + 10_000, 500):
            batch = [Message(f"showroom/v1/BAD-{i}/x/events", payload, NOW) for i in range(b, b + 500)]
            assert ing.ingest(batch).reasons == {"bad_topic": 500}

    tracemalloc.start()  # before the warm-up, so what the flood frees is counted too
    try:
        flood(0)  # warm up: caches fill to their bounds
        flood(10_000)
        before = tracemalloc.get_traced_memory()[0]
        flood(20_000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    print(f"memory grown over 10,000 more unique bad topics: {grown / 1024:.0f} KiB")
    assert grown < 256 * 1024
    assert len(ingest_module.TOPIC_CACHE) <= ingest_module.TOPIC_CACHE.maxsize
    assert ingest_module.TOPIC_CACHE.evictions - evicted_before >= 30_000 - ingest_module.TOPIC_CACHE.maxsize


# --- any bytes: stored or quarantined with a named reason, never internal ---------------------------


def _valid_payloads() -> list[bytes]:
    return [to_json(e) for e in visit()] + [to_json(heartbeat())]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=30,
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid payload with one field replaced by any JSON value, deleted, or its bytes cut or spliced."""
    base = draw(st.sampled_from(_valid_payloads()))
    data = json.loads(base)
    how = draw(st.sampled_from(["replace", "delete", "cut", "splice"]))
    key = draw(st.sampled_from(sorted(data)))
    if how == "replace":
        data[key] = draw(json_values)
        return json.dumps(data).encode()
    if how == "delete":
        del data[key]
        return json.dumps(data).encode()
    at = draw(st.integers(0, len(base)))
    if how == "cut":
        return base[:at]
    return base[:at] + draw(st.binary(max_size=40)) + base[at:]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=300) | mutated(), topic=st.sampled_from([EVENTS_TOPIC, HB_TOPIC, "x/y"]))
def test_any_bytes_are_stored_or_quarantined_with_a_named_reason(
    ing: Ingestor, payload: bytes, topic: str
) -> None:
    try:
        parse_payload(payload, NOW)
    except ContractError as exc:
        assert exc.code in REASONS
    result = ing.ingest_safe([Message(topic, payload, NOW)])
    assert result.stored + result.duplicates + result.quarantined == 1
    assert set(result.reasons) <= REASONS  # never "internal"


# --- file ingest and the registry ---------------------------------------------------------------------


def test_file_ingest_quarantines_a_deeply_nested_line_and_stores_the_rest(tmp_path: Path, db: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    events = visit_events(stamper_for(STORE), VisitPlan(now - timedelta(hours=1), 300.0))
    lines = [to_json(e) for e in events]
    lines.insert(1, b"[" * 20_000 + b"]" * 20_000)
    lines.insert(2, b'{"topic": "t", "payload": ' + b"[" * 20_000 + b"]" * 20_000 + b"}")
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    runner = CliRunner()
    r = runner.invoke(main, ["aggregator", "ingest", str(path), "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert f"stored {len(events)}," in r.output and "too_deep: 2" in r.output
    r = runner.invoke(main, ["aggregator", "quarantine", "--db", str(db), "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"reasons": {"too_deep": 2}}


def test_a_time_zone_change_that_cannot_rebuild_changes_nothing(tmp_path: Path, db: str) -> None:
    runner = CliRunner()
    reg = tmp_path / "stores.yaml"
    reg.write_text(json.dumps(registry("Asia/Shanghai")), encoding="utf-8")
    assert runner.invoke(main, ["aggregator", "stores", "load", str(reg), "--db", str(db)]).exit_code == 0
    ing = Ingestor(open_storage(db))
    events = visit()
    assert ing.ingest([Message(topic_for(e), to_json(e), NOW) for e in events]).stored == len(events)
    ing.storage.close()
    # An event stored by an older, laxer version: no `schema` key.
    data = json.loads(to_json(visit_events(stamper_for(STORE, seed=3), VisitPlan(NOW, 60.0))[0]))
    del data["schema"]
    execute(
        db,
        "INSERT INTO events (event_id, store_id, node_id, seq, type, ts, received_at, payload)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (data["event_id"], STORE, "node-b", 0, data["type"], data["ts"], data["ts"], json.dumps(data)),
    )
    reg.write_text(json.dumps(registry("Europe/Berlin")), encoding="utf-8")
    r = runner.invoke(main, ["aggregator", "stores", "load", str(reg), "--db", str(db)])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert "no longer passes the contract" in r.output and data["event_id"] in r.output
    with Queries.open(db) as q:
        assert q.store(STORE).timezone == "Asia/Shanghai"  # nothing committed
    # without the bad row the change rebuilds, in one go
    execute(db, "DELETE FROM events WHERE event_id = ?", (data["event_id"],))
    r = runner.invoke(main, ["aggregator", "stores", "load", str(reg), "--db", str(db)])
    assert r.exit_code == 0 and f"rebuilt {STORE}" in r.output, r.output
    with Queries.open(db) as q:
        assert q.store(STORE).timezone == "Europe/Berlin"


def test_a_refusal_beyond_the_payload_contract_carries_a_named_reason() -> None:
    err = ingest_module.RejectedError("bad_topic", "topic 'x' is not a contract topic")
    assert isinstance(err, ContractError)
    text = "topic 'x' is not a contract topic"
    assert (err.code, err.reason, err.message) == ("bad_topic", text, text)
    with pytest.raises(ValueError):
        ingest_module.RejectedError("made_up", "no such rule")
