"""The outbox's history (acknowledged rows kept for replay), its replay ranges with reasons, the visits a
crash left open, and writing on a full disk."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from node_testkit import T0, make_events

from edge.events import EventStamper, VisitStarted, parse_event
from edge.node.outbox import ROW_OVERHEAD_BYTES, Outbox, OutboxError, Unavailable
from edge.node.outbox_writer import OutboxWriter
from edge.node.restart import visits_left_open


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def stamper_for(outbox: Outbox) -> EventStamper:
    return EventStamper("store-a", "node-1", next_seq=outbox.next_seq)


def test_acknowledged_rows_stay_as_history_for_replay_and_leave_the_unsent_queue(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", 10_000_000, history_s=3600) as outbox:
        events = make_events(stamper_for(outbox), 6)
        outbox.extend(events)
        for seq in (0, 1, 2):
            assert outbox.ack(seq)
        assert not outbox.ack(1)  # acknowledged once only
        assert [r.seq for r in outbox.pending()] == [3, 4, 5]
        assert outbox.depth() == 3 and outbox.stats().history_rows == 3
        found = outbox.replay(0, 5)
        assert [r.seq for r in found.rows] == [0, 1, 2, 3, 4, 5] and found.unavailable == []
        assert [parse_event(r.payload) for r in found.rows] == events  # the original bytes


def test_history_is_pruned_by_age_and_replay_names_why_a_range_is_missing(tmp_path: Path) -> None:
    clock = Clock()
    with Outbox(tmp_path / "o.sqlite", 10_000_000, history_s=60, clock=clock) as outbox:
        stamper = stamper_for(outbox)
        outbox.extend(make_events(stamper, 4))
        for seq in range(4):
            outbox.ack(seq)
        clock.t += 120  # older than the history now
        outbox.extend(make_events(stamper, 2))  # seq 4, 5: storing prunes
        found = outbox.replay(0, 9)
        assert [r.seq for r in found.rows] == [4, 5]
        assert found.unavailable == [
            Unavailable(0, 3, "outside node history"),
            Unavailable(6, 9, "beyond the node's last seq"),
        ]


def test_over_the_disk_budget_history_goes_before_any_unsent_row(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", 10_000_000, history_s=3600) as probe:
        size = len(probe._row_of(make_events(stamper_for(probe), 1)[0])[5]) + ROW_OVERHEAD_BYTES
    path = tmp_path / "budget.sqlite"
    with Outbox(path, size * 5 + 10, history_s=3600) as outbox:
        stamper = stamper_for(outbox)
        outbox.extend(make_events(stamper, 4))
        for seq in (0, 1, 2):
            outbox.ack(seq)
        outbox.extend(make_events(stamper, 3, start=T0))  # 7 rows for a 5-row budget
        assert outbox.stats().evicted_total == 0  # nothing unsent was lost...
        assert [r.seq for r in outbox.pending()] == [3, 4, 5, 6]
        assert outbox.replay(0, 6).unavailable[0].reason == "outside node history"  # ...history went


def test_history_zero_deletes_on_acknowledgement(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", 10_000_000) as outbox:
        outbox.extend(make_events(stamper_for(outbox), 2))
        outbox.ack(0)
        assert [r.seq for r in outbox.replay(0, 1).rows] == [1]


def test_a_version_1_outbox_is_migrated_keeping_its_unsent_rows(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, "
        "priority INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL, stored_at REAL NOT NULL);"
        "CREATE INDEX outbox_eviction ON outbox (priority, seq);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL); PRAGMA user_version=1;"
    )
    db.execute("INSERT INTO outbox VALUES (0, 'e', 'heat', 0, 't', x'7b7d', 1.0)")
    db.commit()
    db.close()
    with Outbox(path, 10_000_000, history_s=60) as outbox:
        assert [r.seq for r in outbox.pending()] == [0] and outbox.next_seq == 1


def test_replay_rejects_a_reversed_range(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", 10_000_000) as outbox, pytest.raises(OutboxError, match="lo <= hi"):
        outbox.replay(5, 2)


def test_visits_left_open_by_a_crash_end_with_reason_restart_at_the_last_stored_time(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path, 10_000_000) as outbox:
        stamper = stamper_for(outbox)
        events = make_events(stamper, 3)  # three visits start, none ends: then the node is killed
        outbox.extend(events)
    with Outbox(path, 10_000_000) as outbox:
        stamper = stamper_for(outbox)
        ended = visits_left_open(outbox, stamper)
        assert sorted(e.visitor_id for e in ended) == sorted(
            e.visitor_id for e in events if isinstance(e, VisitStarted)
        )
        assert {e.end_reason for e in ended} == {"restart"}
        assert {e.ts for e in ended} == {events[-1].ts}  # when the node last stored anything
        outbox.extend(ended)
        assert outbox.open_visits() == [] and visits_left_open(outbox, stamper) == []


def test_a_full_disk_holds_payloads_in_memory_then_writes_them_in_order(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", 10_000_000, history_s=3600) as outbox:
        stamper = stamper_for(outbox)
        writer = OutboxWriter(outbox, max_held=1000)
        writer.store(make_events(stamper, 2))
        outbox.ack(0)
        # A real "database or disk is full": the file may not grow past its current pages.
        (pages,) = outbox._db.execute("PRAGMA page_count").fetchone()
        outbox._db.execute(f"PRAGMA max_page_count = {pages}")
        held = make_events(stamper, 300, start=T0)
        assert writer.store(held) == []
        assert writer.failures >= 1 and writer.held == 300
        assert outbox.stats().history_rows == 0  # the sent history was given up first
        outbox._db.execute("PRAGMA max_page_count = 1000000")  # room again
        more = make_events(stamper, 1, start=T0)
        assert [e.seq for e in writer.store(more)] == [e.seq for e in held + more]
        assert writer.held == 0 and outbox.depth() == 1 + 301
