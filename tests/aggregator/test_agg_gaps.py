"""Sequence gaps: the report (open, unrecoverable with the node's reason, not believed), the replay
request and reply formats, when the aggregator asks, and statuses that count from their receipt."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from aggregator.gaps import Gap, ReplayScheduler, gap_report, missing_count
from aggregator.ingest import Ingestor, Message
from aggregator.queries import Queries
from aggregator.storage import open_storage
from aggregator.synth import VisitPlan, stamper_for, visit_events
from edge.events import Envelope, Status, VisitEnded, VisitStarted, replay_reply_topic, to_json, topic_for
from edge.mqtt_common import REPLAY_MAX_SPAN, ReplayFormatError, ReplayReply, ReplayRequest

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
STORE = "store-g"


def msgs(events: list[Envelope], received_at: datetime = NOW) -> list[Message]:
    return [Message(topic_for(e), to_json(e), received_at) for e in events]


def scalar(db: str, sql: str) -> object:
    """One value read straight from the test database of either backend."""
    if db.startswith("postgresql"):
        with psycopg.connect(db) as pg:
            row = pg.execute(sql).fetchone()
    else:
        with closing(sqlite3.connect(db)) as lite:
            row = lite.execute(sql).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture
def ing(db: str) -> Iterator[Ingestor]:
    ingestor = Ingestor(open_storage(db))
    yield ingestor
    ingestor.storage.close()


def test_gap_report_splits_open_and_unrecoverable_and_never_believes_a_forged_jump() -> None:
    ranges = [(0, 9), (20, 29), (40, 40), (2**63 - 1, 2**63 - 1)]
    report = gap_report(ranges, [(12, 14, "outside node history")])
    assert report == [
        Gap(10, 11, "open"),
        Gap(12, 14, "unrecoverable", "outside node history"),
        Gap(15, 19, "open"),
        Gap(30, 39, "open"),
        Gap(41, 2**63 - 2, "not believed", report[-1].reason),
    ]
    assert "not believed" in (report[-1].reason or "")
    assert missing_count(report) == 2 + 3 + 5 + 10  # the forged jump counts nothing


def test_replay_formats_round_trip_and_name_what_is_wrong() -> None:
    request = ReplayRequest("r1", 5, 9)
    assert ReplayRequest.parse(request.to_json()) == request
    reply = ReplayReply("r1", 5, 9, 3, ((5, 6, "outside node history"),))
    assert ReplayReply.parse(reply.to_json()) == reply
    bad = [
        (b"not json", "not JSON"),
        (b"[1]", "JSON object"),
        (json.dumps({"request_id": "r", "from_seq": 9, "to_seq": 5}).encode(), "from_seq <= to_seq"),
        (json.dumps({"request_id": "r", "from_seq": 0, "to_seq": REPLAY_MAX_SPAN}).encode(), "span"),
        (json.dumps({"request_id": "", "from_seq": 0, "to_seq": 1}).encode(), "request_id"),
        (json.dumps({"request_id": "r", "from_seq": True, "to_seq": 1}).encode(), "from_seq"),
        (b"[" * 100_000, "over 65536"),
        (b"[" * 60_000, "not JSON"),  # nested past the parser's depth: an error, not a crash
    ]
    for payload, why in bad:
        with pytest.raises(ReplayFormatError, match=why):
            ReplayRequest.parse(payload)
    outside = json.dumps(
        {"request_id": "r", "from_seq": 5, "to_seq": 9, "replayed": 0, "unavailable": [[1, 2, "x"]]}
    )
    with pytest.raises(ReplayFormatError, match="lo must be"):
        ReplayReply.parse(outside)


def test_scheduler_waits_for_a_late_payload_then_asks_and_backs_off() -> None:
    s = ReplayScheduler(grace_s=2.0, retry_s=5.0, max_retry_s=20.0)
    s.observe({(STORE, "n"): [(10, 12)]}, now=0.0)
    assert s.due(1.0) == []  # still within the grace: it may just be late
    ((store, node, request),) = s.due(2.0)
    assert (store, node, request.from_seq, request.to_seq) == (STORE, "n", 10, 12)
    assert s.due(6.0) == [] and len(s.due(7.0)) == 1  # asked again after retry_s
    assert s.due(16.0) == [] and len(s.due(17.0)) == 1  # then after twice that
    s.observe({(STORE, "n"): []}, now=18.0)  # filled
    assert s.due(100.0) == [] and s.open_gaps() == {}


def test_ingest_reports_open_gaps_and_records_what_the_node_cannot_send(ing: Ingestor) -> None:
    stamper = stamper_for(STORE, "n1")
    events = [e for i in range(6) for e in visit_events(stamper, VisitPlan(NOW + timedelta(minutes=i), 60))]
    kept = [e for e in events if e.seq not in (3, 4, 5, 8)]
    result = ing.ingest(msgs(kept))
    assert result.gaps == {(STORE, "n1"): [(3, 5), (8, 8)]}
    reply = ReplayReply("r", 3, 5, 1, ((3, 4, "outside node history"),))
    got = ing.ingest([Message(replay_reply_topic(STORE, "n1"), reply.to_json(), NOW)])
    assert got.replay_replies == 1 and got.stored == 0 and got.quarantined == 0
    again = ing.ingest(msgs([e for e in events if e.seq == 5]))  # replayed
    assert again.gaps == {(STORE, "n1"): [(8, 8)]}
    report = Queries(ing.storage).gap_report(STORE, "n1")
    assert report == [Gap(3, 4, "unrecoverable", "outside node history"), Gap(8, 8, "open")]
    (node,) = Queries(ing.storage).nodes([STORE], now=NOW)
    assert node.seq_missing == 3 and node.gaps == tuple(report)
    forged = ing.ingest([Message(replay_reply_topic(STORE, "n1"), b'{"request_id": 1}', NOW)])
    assert forged.reasons == {"bad_replay_reply": 1}


def test_a_status_counts_from_its_receipt_so_a_will_made_earlier_still_says_offline(ing: Ingestor) -> None:
    stamper = stamper_for(STORE, "n1")
    ing.ingest(msgs(visit_events(stamper, VisitPlan(NOW, 60))[:1], received_at=NOW))
    made = NOW - timedelta(hours=1)  # the node's clock (or its will's ts) is an hour behind
    online = stamper.stamp(Status, NOW, status="online")
    will = stamper.stamp(Status, made, status="offline")
    ing.ingest(msgs([online], received_at=NOW))
    ing.ingest(msgs([will], received_at=NOW + timedelta(seconds=5)))
    (node,) = Queries(ing.storage).nodes([STORE], now=NOW + timedelta(seconds=6))
    assert (node.state, node.online) == ("offline", False)


def test_a_node_silent_for_two_heartbeat_periods_is_stale(ing: Ingestor) -> None:
    stamper = stamper_for(STORE, "n1")
    ing.ingest(msgs([stamper.stamp(Status, NOW, status="online")], received_at=NOW))
    q = Queries(ing.storage)
    assert q.nodes([STORE], now=NOW + timedelta(seconds=50))[0].state == "online"
    assert q.nodes([STORE], now=NOW + timedelta(seconds=70))[0].state == "stale"
    assert q.nodes([STORE], now=NOW + timedelta(seconds=3), heartbeat_period_s=1.0)[0].state == "stale"


def test_a_forged_seq_of_2_63_minus_1_is_not_believed_nor_asked_for(ing: Ingestor) -> None:
    stamper = stamper_for(STORE, "n1")
    events = [e for i in range(3) for e in visit_events(stamper, VisitPlan(NOW + timedelta(minutes=i), 60))]
    ing.ingest(msgs(events))
    forged = stamper_for(STORE, "n1", seed=9)
    forged.next_seq = 2**63 - 1
    one = forged.stamp(VisitStarted, NOW, visitor_id=forged.ids.visitor_id(), door_id="main")
    result = ing.ingest(msgs([one]))
    assert result.reasons == {"seq_jump": 1}  # the contract check refuses it first
    ing.max_seq_jump = 2**63  # past that check, the gap report does not believe it either
    result = ing.ingest(msgs([one]))
    assert result.stored == 1 and result.gaps == {(STORE, "n1"): []}  # nothing to ask the node for
    (node,) = Queries(ing.storage).nodes([STORE], now=NOW)
    assert node.seq_missing == 0
    (gap,) = node.gaps
    assert gap.state == "not believed" and "9223372036854775801" not in (gap.reason or "")


def test_visits_a_node_closed_on_restart_count_as_visitors_but_not_in_durations(
    ing: Ingestor, db: str
) -> None:
    stamper = stamper_for(STORE, "n1")
    door = visit_events(stamper, VisitPlan(NOW, 120))
    started = visit_events(stamper, VisitPlan(NOW + timedelta(minutes=5), 60))[0]
    assert isinstance(started, VisitStarted)
    closed = stamper.stamp(
        VisitEnded,
        NOW + timedelta(minutes=50),
        visitor_id=started.visitor_id,
        door_id=None,
        started_at=started.ts,
        duration_s=45 * 60.0,
        browsed=False,
        entered_car=False,
        received=False,
        end_reason="restart",
    )
    ing.ingest(msgs([*door, started, closed]))
    day = NOW.date().isoformat()
    facts = ing.storage.day_facts(STORE, day)
    assert facts.visitors == 2
    assert facts.visit_durations_s == [120.0]
    assert scalar(db, "SELECT count(*) FROM visits WHERE end_reason = 'restart'") == 1
