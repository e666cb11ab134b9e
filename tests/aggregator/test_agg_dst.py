"""Days across daylight-saving changes: 23 and 25 local hours, each visit in its own hour bucket."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from aggregator.ingest import Ingestor, Message
from aggregator.queries import Queries
from aggregator.registry import parse_registry
from aggregator.storage import open_storage
from aggregator.synth import VisitPlan, stamper_for, visit_events
from aggregator.timebuckets import (
    day_and_hour,
    day_span_utc,
    hour_key,
    hour_start_utc,
    hours_of_day,
    local_day,
    ts_key,
    zone,
)
from edge.events import format_ts, to_json, topic_for

STORE = "be-mitte-01"
TZ = "Europe/Berlin"


@pytest.mark.parametrize(
    ("day", "n_hours", "repeated"),
    [(date(2026, 3, 29), 23, None), (date(2026, 10, 25), 25, 2), (date(2026, 6, 1), 24, None)],
)
def test_dst_day_counts_every_hour_once(db: str, day: date, n_hours: int, repeated: int | None) -> None:
    ing = Ingestor(open_storage(db))
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
    with Queries.open(db) as q:
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


def test_week_over_week_hours_match_by_wall_clock_across_dst(db: str) -> None:
    """The 25-hour day compares each wall-clock hour with the same hour a week before (a 24-hour day);
    the repeated hour has no counterpart the week before."""
    ing = Ingestor(open_storage(db))
    ing.load_registry(
        parse_registry(
            {"stores": [{"store_id": STORE, "name": "Mitte", "brand": "b", "region": "r", "timezone": TZ}]}
        )
    )
    stamper = stamper_for(STORE)
    before, day = date(2026, 10, 18), date(2026, 10, 25)
    events = []
    for d, per_hour in ((before, 2), (day, 1)):
        start, end = day_span_utc(d, zone(TZ))
        hours = int((end - start).total_seconds() // 3600)
        for i in range(hours):
            for k in range(per_hour):
                events += visit_events(stamper, VisitPlan(start + timedelta(hours=i, minutes=5 + k), 60.0))
    ing.ingest([Message(topic_for(e), to_json(e), datetime.now(UTC)) for e in events])
    with Queries.open(db) as q:
        hours = q.hourly_traffic(STORE, day)
    assert len(hours) == 25 and all(h.visitors == 1 for h in hours)
    for h in hours:
        assert h.last_week_visitors == (0 if h.fold else 2), h


def _hour_start_by_wall_clock(t: datetime, tz_name: str) -> datetime:
    """The local hour's start worked out on the clock face: shift by the local offset, zero the minutes,
    shift back (an independent reference for the buckets)."""
    offset = t.astimezone(zone(tz_name)).utcoffset() or timedelta(0)
    return (t + offset).replace(minute=0, second=0, microsecond=0) - offset


@pytest.mark.parametrize(
    "tz_name",
    ["Europe/Berlin", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe", "Pacific/Chatham", "UTC"],
)
def test_day_and_hour_match_the_local_day_and_hour_through_a_year(tz_name: str) -> None:
    """Every instant's day and hour buckets are the local calendar day and the start of the local hour on
    the clock face, across both daylight-saving changes (Lord Howe shifts by 30 minutes, Chatham and
    Kathmandu sit at 45 minutes past the UTC hour)."""
    tz = zone(tz_name)
    t = datetime(2026, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC)
    while t < datetime(2027, 1, 1, tzinfo=UTC):
        start = _hour_start_by_wall_clock(t, tz_name)
        assert hour_start_utc(t, tz) == start, t
        assert hour_key(t, tz) == format_ts(start), t
        assert day_and_hour(t, tz) == (t.astimezone(tz).date().isoformat(), format_ts(start)), t
        assert local_day(t, tz) == t.astimezone(tz).date(), t
        t += timedelta(minutes=7, seconds=31)


def test_ts_key_is_the_contract_format() -> None:
    for t in (
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 0, 0, 999_999, tzinfo=UTC),
        datetime(2100, 1, 2, 3, 4, 5, 6_000, tzinfo=UTC),
        datetime(2026, 10, 25, 2, 30, 0, 123_000, tzinfo=zone("Europe/Berlin")),
    ):
        assert ts_key(t) == format_ts(t)
    assert ts_key(datetime(2026, 3, 29, 1, 0, 0, 999_999, tzinfo=UTC)) == "2026-03-29T01:00:00.999Z"
