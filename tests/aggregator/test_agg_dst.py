"""Days across daylight-saving changes: 23 and 25 local hours, each visit in its own hour bucket."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from aggregator.ingest import Ingestor, Message
from aggregator.queries import Queries
from aggregator.registry import parse_registry
from aggregator.storage import SqliteStorage
from aggregator.synth import VisitPlan, stamper_for, visit_events
from aggregator.timebuckets import day_span_utc, hours_of_day, zone
from edge.events import to_json, topic_for

STORE = "be-mitte-01"
TZ = "Europe/Berlin"


@pytest.mark.parametrize(
    ("day", "n_hours", "repeated"),
    [(date(2026, 3, 29), 23, None), (date(2026, 10, 25), 25, 2), (date(2026, 6, 1), 24, None)],
)
def test_dst_day_counts_every_hour_once(
    tmp_path: Path, day: date, n_hours: int, repeated: int | None
) -> None:
    ing = Ingestor(SqliteStorage(tmp_path / "agg.sqlite"))
    ing.load_registry(
        parse_registry(
            {"stores": [{"store_id": STORE, "name": "Mitte", "brand": "b", "region": "r", "timezone": TZ}]}
        )
    )
    start, end = day_span_utc(day, zone(TZ))
    assert (end - start) == timedelta(hours=n_hours)
    stamper = stamper_for(STORE)
    # One visit starting 10 minutes into every real hour of the local day, plus one just outside each end.
    starts = [start + timedelta(hours=i, minutes=10) for i in range(n_hours)]
    outside = [start - timedelta(minutes=20), end + timedelta(minutes=5)]
    events = [e for t in starts + outside for e in visit_events(stamper, VisitPlan(t, 300.0))]
    ing.ingest([Message(topic_for(e), to_json(e), datetime.now(UTC)) for e in events])
    with Queries.open(tmp_path / "agg.sqlite") as q:
        hours = q.hourly_traffic(STORE, day)
        funnel = q.funnel(STORE, day)
    assert len(hours) == n_hours
    assert [h.visitors for h in hours] == [1] * n_hours
    assert funnel.visitors == n_hours
    labels = [h.local_hour for h in hours]
    if repeated is None:
        assert len(set(labels)) == n_hours
    else:
        assert labels.count(repeated) == 2 and [h.fold for h in hours if h.local_hour == repeated] == [0, 1]
    if n_hours == 23:
        assert 2 not in labels  # 02:00-03:00 does not exist that night


def test_hours_of_day_in_a_half_hour_zone() -> None:
    hours = hours_of_day(date(2026, 11, 23), zone("Asia/Kolkata"))
    assert len(hours) == 24 and hours[0].start_utc == datetime(2026, 11, 22, 18, 30, tzinfo=UTC)
