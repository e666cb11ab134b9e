"""Door-count accuracy audits: the system's count of a window beside a person's, through the real ingest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from aggregator.audit import AuditError, record_audit
from aggregator.ingest import Ingestor, Message
from aggregator.queries import Queries
from aggregator.registry import parse_registry
from aggregator.storage import open_storage
from aggregator.synth import VisitPlan, stamper_for, visit_events
from edge.events import to_json, topic_for
from showroom.cli import main
from tests.aggregator.conftest import NewDb

STORE, OTHER, TZ = "sh-pudong-01", "sh-xuhui-02", "Asia/Shanghai"
REGISTRY = {
    "brands": [{"id": "aurora", "name": "Aurora Motors"}],
    "stores": [
        {"store_id": s, "name": s, "brand": "aurora", "region": "east", "timezone": TZ, "cars": []}
        for s in (STORE, OTHER)
    ],
}
# 14:00-15:00 Shanghai time on 21 November is 06:00-07:00 UTC.
HOUR = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(new_db: NewDb) -> str:
    """12 visits that come in between 14:00 and 15:00 local (9 of them leave through the door before 15:00,
    3 stay past it), and 2 that come in just before and just after the hour."""
    path = new_db()
    ingestor = Ingestor(open_storage(path))
    ingestor.load_registry(parse_registry(REGISTRY))
    stamper = stamper_for(STORE)
    plans = [VisitPlan(HOUR + timedelta(minutes=4 * i), 600.0 if i < 9 else 1800.0) for i in range(12)]
    plans += [VisitPlan(HOUR - timedelta(seconds=1), 60.0), VisitPlan(HOUR + timedelta(hours=1), 60.0)]
    events = [e for p in plans for e in visit_events(stamper, p)]
    ingestor.ingest([Message(topic_for(e), to_json(e), NOW) for e in events])
    ingestor.storage.close()
    return path


def test_audit_compares_the_manual_count_with_the_systems_window(db: str) -> None:
    storage = open_storage(db)
    # The window is [start, end): the visit at 14:00:00 counts, the one at 15:00:00 does not; the one at
    # 13:59:59 came in before but left (13:59:59 + 60 s) inside the window: an outward crossing in it.
    audit = record_audit(storage, STORE, HOUR, HOUR + timedelta(hours=1), 12, 10, auditor="Li Wei", now=NOW)
    assert (audit.system_in, audit.system_out) == (12, 10)
    assert audit.accuracy == 1.0 and audit.accuracy_in == 1.0 and audit.accuracy_out == 1.0
    # A person who counted 13 in and 10 out: in 12/13 = 92.3%; both directions 1 - 1/23.
    off = record_audit(storage, STORE, HOUR, HOUR + timedelta(hours=1), 13, 10, auditor="Li Wei", now=NOW)
    assert off.accuracy_in == pytest.approx(1 - 1 / 13)
    assert off.accuracy == pytest.approx(1 - 1 / 23)
    only_in = record_audit(
        storage,
        STORE,
        HOUR,
        HOUR + timedelta(minutes=30),
        10,
        auditor="Li Wei",
        note="cam 1 recording",
        now=NOW,
    )
    assert only_in.system_in == 8 and only_in.manual_out is None and only_in.system_out is None
    assert only_in.accuracy == pytest.approx(1 - 2 / 10)
    storage.close()
    with Queries.open(db) as q:
        audits = q.audits(STORE)
        assert [a.audit_id for a in audits] == [
            off.audit_id,
            audit.audit_id,
            only_in.audit_id,
        ]  # latest sample first
        assert audits[-1].note == "cam 1 recording" and audits[-1].auditor == "Li Wei"


def test_bad_audits_are_refused_with_the_reason(db: str) -> None:
    storage = open_storage(db)
    end = HOUR + timedelta(hours=1)
    cases = [
        ((STORE, HOUR, HOUR, 5), "not after start"),
        ((STORE, HOUR, HOUR + timedelta(hours=25), 5), "longer than"),
        ((STORE, NOW - timedelta(minutes=30), NOW + timedelta(minutes=30), 5), "in the future"),
        ((STORE, HOUR, end, -1), "manual_in must be >= 0"),
        (("no-such-store", HOUR, end, 5), "'no-such-store' is neither registered"),
        ((STORE, HOUR.replace(tzinfo=None), end, 5), "has no time zone"),
    ]
    for args, message in cases:
        with pytest.raises(AuditError, match=message):
            record_audit(storage, *args, auditor="Li Wei", now=NOW)  # type: ignore[arg-type]
    with pytest.raises(AuditError, match="auditor must name"):
        record_audit(storage, STORE, HOUR, end, 5, auditor=" ", now=NOW)
    assert storage.audit_rows() == []  # nothing half-recorded
    storage.close()


def test_audit_status_flags_stores_never_or_long_ago_audited(db: str) -> None:
    storage = open_storage(db)
    record_audit(storage, STORE, HOUR, HOUR + timedelta(hours=1), 12, auditor="Li Wei", now=NOW)
    storage.close()
    with Queries.open(db) as q:
        fresh = {s.store_id: s for s in q.audit_status(NOW)}
        assert fresh[OTHER].stale and fresh[OTHER].last is None  # never audited
        assert not fresh[STORE].stale and fresh[STORE].last is not None
        assert fresh[STORE].last.accuracy == 1.0
        later = q.audit_status(NOW + timedelta(days=91))
    assert [(s.store_id, s.stale) for s in later] == [(OTHER, True), (STORE, True)]


def test_cli_records_in_store_local_time_and_lists(db: str) -> None:
    runner = CliRunner()
    base = ["aggregator", "audit", "record", "--db", str(db), "--store", STORE, "--auditor", "Li Wei"]
    result = runner.invoke(
        main, [*base, "--start", "2026-11-21T14:00", "--end", "2026-11-21T15:00", "--manual-in", "12"]
    )
    assert result.exit_code == 0, result.output
    assert "in: manual 12, system 12 (100.0%)" in result.output and "+08:00" in result.output
    bad = runner.invoke(
        main, [*base, "--start", "2026-11-21T15:00", "--end", "2026-11-21T14:00", "--manual-in", "1"]
    )
    assert bad.exit_code == 1 and "is not after start" in bad.output
    listed = runner.invoke(
        main, ["aggregator", "audit", "list", "--db", str(db), "--stale-after-days", "100000"]
    )
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0] == f"{OTHER}\tSTALE\tnever audited"
    assert lines[1] == f"{STORE}\tok\tlast 2026-11-21 100.0%"
    one = runner.invoke(main, ["aggregator", "audit", "list", "--db", str(db), "--store", STORE])
    assert "\tin 12/12\tout -\t100.0%\tLi Wei" in one.output
