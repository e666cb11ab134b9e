"""The durable outbox: written before any send, deleted on acknowledgement, numbered across restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from node_testkit import T0, make_events

from edge.events import EventStamper, Heartbeat, Status, parse_event
from edge.node.outbox import ROW_OVERHEAD_BYTES, Outbox, OutboxError

REPO = Path(__file__).resolve().parents[2]


def stamper_for(outbox: Outbox) -> EventStamper:
    return EventStamper("store-a", "node-1", next_seq=outbox.next_seq)


def heartbeat(stamper: EventStamper, i: int) -> Heartbeat:
    return stamper.stamp(
        Heartbeat,
        T0,
        cameras=[],
        outbox_depth=i,
        model_id="m",
        software_version="0.1.0",
        uptime_s=float(i),
    )


def test_rows_round_trip_in_seq_order_and_ack_deletes(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", 10_000_000) as outbox:
        events = make_events(stamper_for(outbox), 5)
        outbox.extend(events)
        rows = outbox.pending()
        assert [r.seq for r in rows] == [0, 1, 2, 3, 4]
        assert [parse_event(r.payload) for r in rows] == events
        assert rows[0].topic == "showroom/v1/store-a/node-1/events"
        assert outbox.pending(exclude={0, 1}, limit=2)[0].seq == 2
        assert outbox.ack(1) and not outbox.ack(1)
        assert [r.seq for r in outbox.pending()] == [0, 2, 3, 4]
        assert outbox.depth() == 4


def test_seq_and_unsent_rows_survive_reopen_even_when_all_were_acked(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path, 10_000_000) as outbox:
        outbox.extend(make_events(stamper_for(outbox), 3))
        for seq in (0, 1, 2):
            outbox.ack(seq)
        assert outbox.depth() == 0
    with Outbox(path, 10_000_000) as outbox:
        assert outbox.next_seq == 3  # numbering continues although nothing is stored
        stamper = stamper_for(outbox)
        outbox.extend(make_events(stamper, 2))
    with Outbox(path, 10_000_000) as outbox:
        assert [r.seq for r in outbox.pending()] == [3, 4]
        assert outbox.next_seq == 5


def test_seq_going_backwards_is_refused(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", 10_000_000) as outbox:
        outbox.extend(make_events(stamper_for(outbox), 2))
        stale = make_events(EventStamper("store-a", "node-1", next_seq=1), 1)
        with pytest.raises(OutboxError, match=r"seq 1 .* below the outbox's next seq 2"):
            outbox.extend(stale)
        status = EventStamper("store-a", "node-1", next_seq=2).stamp(Status, T0, status="online")
        with pytest.raises(OutboxError, match="'status' does not go through the outbox"):
            outbox.append(status)


def test_disk_budget_evicts_heat_first_then_heartbeats_and_visits_last(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", 10_000_000) as probe:
        stamper = stamper_for(probe)
        sample = make_events(stamper, 4, heat_every=2)  # visit, heat, visit, heat
        probe.extend(sample)
        row_bytes = {r.type: len(r.payload) + ROW_OVERHEAD_BYTES for r in probe.pending()}
    # Room for 4 visits, 2 heat minutes and one heartbeat, and not a byte more.
    budget = 4 * row_bytes["visit.started"] + 2 * row_bytes["heat"] + 700
    with Outbox(tmp_path / "b.sqlite", budget) as outbox:
        stamper = stamper_for(outbox)
        events = make_events(stamper, 8, heat_every=2)  # 4 visits, 4 heat minutes
        outbox.extend(events)
        kept = outbox.pending()
        heat_kept = [r.seq for r in kept if r.type == "heat"]
        heat_all = [e.seq for e in events if e.type == "heat"]  # type: ignore[attr-defined]
        assert heat_kept == heat_all[-len(heat_kept) :] and len(heat_kept) < len(heat_all)
        assert [r.type for r in kept].count("visit.started") == 4
        outbox.append(heartbeat(stamper, 1))
        outbox.append(heartbeat(stamper, 2))
        stats = outbox.stats()
        assert stats.stored_bytes <= budget
        assert [r.type for r in outbox.pending()].count("visit.started") == 4
        # Heat goes before any heartbeat: a heartbeat is evicted only once no heat is left.
        if stats.evicted_by_type.get("heartbeat"):
            assert stats.evicted_by_type["heat"] == 4
        evicted_before = stats.evicted_total
        assert evicted_before >= 2 and set(stats.evicted_by_type) <= {"heat", "heartbeat"}
        # Visits go only when nothing else is left.
        more = make_events(stamper, 6, start=T0.replace(hour=11))
        outbox.extend(more)
        stats = outbox.stats()
        assert stats.stored_bytes <= budget
        assert stats.evicted_by_type["heat"] == 4
        assert stats.evicted_by_type.get("visit.started", 0) > 0
        remaining = outbox.pending()
        assert all(r.type == "visit.started" for r in remaining)
        assert [r.seq for r in remaining] == sorted(r.seq for r in remaining)
        assert remaining[-1].seq == more[-1].seq  # the newest visit is kept, the oldest went
    with Outbox(tmp_path / "b.sqlite", budget) as reopened:
        assert reopened.stats().evicted_by_type == stats.evicted_by_type  # the report survives restarts


def test_committed_rows_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from node_testkit import make_events
        from edge.events import EventStamper
        from edge.node.outbox import Outbox
        outbox = Outbox({str(path)!r}, 10_000_000)
        outbox.extend(make_events(EventStamper("store-a", "node-1", next_seq=outbox.next_seq), 20))
        outbox.ack(0)
        print("stored", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "stored" in proc.stdout
    with Outbox(path, 10_000_000) as outbox:
        assert [r.seq for r in outbox.pending(limit=1000)] == list(range(1, 20))
        assert outbox.next_seq == 20
        assert json.loads(outbox.pending()[0].payload)["seq"] == 1


def test_unusable_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(OutboxError, match="is not usable"):
        Outbox(bad, 10_000)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 30)), max_size=40))
def test_depth_and_bytes_stay_consistent_under_any_appends_and_acks(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[bool, int]]
) -> None:
    path = tmp_path_factory.mktemp("prop") / "o.sqlite"
    with Outbox(path, 10_000_000) as outbox:
        stamper = stamper_for(outbox)
        stored: set[int] = set()
        for is_append, n in steps:
            if is_append:
                events = make_events(stamper, n % 4 + 1, heat_every=3)
                outbox.extend(events)
                stored |= {e.seq for e in events}
            elif stored:
                seq = sorted(stored)[n % len(stored)]
                assert outbox.ack(seq)
                stored.discard(seq)
        assert {r.seq for r in outbox.pending(limit=10_000)} == stored
        recount = sum(len(r.payload) + ROW_OVERHEAD_BYTES for r in outbox.pending(limit=10_000))
        assert outbox.stats().stored_bytes == recount
        assert outbox.next_seq == stamper.next_seq
