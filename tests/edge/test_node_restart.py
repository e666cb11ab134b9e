"""A node killed with visits open closes them when it starts again (reason `restart`), first thing."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from node_testkit import T0, make_events

from edge.config import parse_config
from edge.events import EventStamper, VisitStarted
from edge.node.outbox import Outbox
from edge.node.runtime import NodeRuntime, RuntimeOptions
from tests.netkit import free_port

REPO = Path(__file__).resolve().parents[2]


def test_the_runtime_closes_the_visits_a_crash_left_open_when_it_starts(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "examples" / "sim-store.yaml").read_text())
    outbox_path = tmp_path / "outbox.sqlite"
    data["outbox"] = {"path": str(outbox_path), "max_mb": 50}
    data["broker"] = {"url": f"mqtt://127.0.0.1:{free_port()}"}  # no broker: everything stays in the outbox
    config = parse_config(data)
    with Outbox(outbox_path, 50_000_000) as outbox:  # what the killed run left
        stamper = EventStamper(config.store_id, config.node_id, next_seq=outbox.next_seq)
        left = [e for e in make_events(stamper, 3, start=T0) if isinstance(e, VisitStarted)]
        outbox.extend(left)
    summary = NodeRuntime(config, options=RuntimeOptions(heartbeat_s=1.0, realtime=False)).run(duration_s=1.0)
    assert summary.visits_closed_on_restart == 3
    with Outbox(outbox_path, 50_000_000) as outbox:
        rows = [json.loads(r.payload) for r in outbox.pending(limit=100_000)]
    closed = [r for r in rows if r["type"] == "visit.ended" and r["end_reason"] == "restart"]
    assert sorted(r["visitor_id"] for r in closed) == sorted(e.visitor_id for e in left)
    assert [r["seq"] for r in rows[3:6]] == [3, 4, 5] and rows[3]["end_reason"] == "restart"  # first thing
    assert {r["ts"] for r in closed} == {left[-1].model_dump(mode="json")["ts"]}
